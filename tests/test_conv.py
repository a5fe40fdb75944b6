"""Convolution and pooling: PyTorch semantics, edge cases, errors, layers, and a small CNN
trained compiled vs eager. Values are checked against the loop references in cases_conv.py
(written without im2col) and against finite differences."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from cases_conv import ref_avg_pool, ref_conv, ref_max_pool
from differential import Program, run_differential
from gradcheck import check_first_order

import aprender as ap
import aprender.nn.functional as F
from aprender import nn
from aprender.autograd import Tensor
from aprender.errors import DTypeError, ShapeError
from aprender.ir.ops import conv as conv_ops


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- values over many configurations -----------------------------------------------------------

CONV2D_CONFIGS = [
    dict(stride=s, padding=p, dilation=d, groups=g)
    for s, p, d, g in itertools.product([1, 2, (2, 1)], [0, 1, (0, 2), "same", "valid"],
                                        [1, (1, 2)], [1, 2])
    if not (p == "same" and s != 1)
]


@pytest.mark.parametrize("cfg", CONV2D_CONFIGS, ids=str)
def test_conv2d_matches_the_loop_reference_and_finite_differences(cfg) -> None:
    rng = _rng(1)
    x = rng.standard_normal((2, 4, 6, 7))
    w = rng.standard_normal((6, 4 // cfg["groups"], 3, 2))
    b = rng.standard_normal(6)
    got = F.conv2d(Tensor(x), Tensor(w), Tensor(b), **cfg)
    np.testing.assert_allclose(got.data(), ref_conv(x, w, b, **cfg), rtol=1e-12, atol=1e-12)
    small = (x[:1, :, :5, :5], w[:4], b[:4])
    check_first_order(lambda a, v, c: F.conv2d(a, v, c, **cfg), list(small))


@pytest.mark.parametrize("size,kernel,stride,padding,dilation,ceil_mode", [
    (7, 3, 2, 1, 1, True), (6, 2, 2, 1, 1, True), (5, 2, 2, 0, 1, True), (8, 3, 3, 1, 2, True),
    (9, 4, 1, 2, 1, False), (5, 5, 1, 0, 1, False), (10, 3, 4, 1, 2, True),
])
def test_pooling_shapes_and_values_follow_pytorch_rules(size, kernel, stride, padding,
                                                        dilation, ceil_mode) -> None:
    x = _rng(2).standard_normal((2, 3, size, size + 1))
    got = F.max_pool2d(Tensor(x), kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(got.data(),
                                  ref_max_pool(x, kernel, stride, padding, dilation, ceil_mode))
    for include in (True, False):
        got = F.avg_pool2d(Tensor(x), kernel, stride, padding, ceil_mode, include)
        np.testing.assert_allclose(got.data(), ref_avg_pool(x, kernel, stride, padding,
                                                            ceil_mode, include), rtol=1e-12)


def test_ceil_mode_output_sizes_are_pytorchs() -> None:
    # torch.nn.functional.max_pool2d on these sizes gives 3, 4 and 3
    assert F.max_pool2d(ap.zeros((1, 1, 7, 7)), 3, 2, ceil_mode=True).shape == (1, 1, 3, 3)
    assert F.max_pool2d(ap.zeros((1, 1, 6, 6)), 2, 2, 1, ceil_mode=True).shape == (1, 1, 4, 4)
    assert F.max_pool2d(ap.zeros((1, 1, 5, 5)), 2, 2, ceil_mode=True).shape == (1, 1, 3, 3)
    assert F.max_pool2d(ap.zeros((1, 1, 5, 5)), 2, 2).shape == (1, 1, 2, 2)


def test_avg_pool_divisors_match_pytorch_values() -> None:
    x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    # values printed by torch.nn.functional.avg_pool2d(x, 3, 2, 1, ceil_mode=True, ...)
    np.testing.assert_allclose(
        F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False).data()[0, 0],
        [[2.5, 4.0, 5.0], [8.5, 10.0, 11.0], [12.5, 14.0, 15.0]])
    np.testing.assert_allclose(
        F.avg_pool2d(x, 3, 2, 1, ceil_mode=True).data()[0, 0],
        [[10 / 9, 24 / 9, 10 / 6], [51 / 9, 10.0, 33 / 6], [25 / 6, 42 / 6, 45 / 12]])


@pytest.mark.parametrize("x_shape,w_shape,kw", [
    ((0, 2, 5, 5), (3, 2, 3, 3), dict(padding=1)),            # empty batch
    ((2, 2, 5, 5), (3, 2, 1, 1), {}),                         # 1x1 kernel
    ((2, 2, 5, 5), (3, 2, 5, 5), {}),                         # kernel == input
    ((2, 2, 4, 6), (3, 2, 4, 5), dict(padding=(0, 1))),        # wide kernel (general path)
    ((1, 2, 3, 3), (2, 2, 3, 3), dict(padding=2, dilation=2)),
    ((2, 3, 7), (3, 1, 7), dict(groups=3, padding="same")),   # 1-d depthwise
])
def test_conv_edge_shapes(x_shape, w_shape, kw) -> None:
    rng = _rng(7)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    fn = F.conv2d if len(x_shape) == 4 else F.conv1d
    xt, wt = Tensor(x).requires_grad(), Tensor(w).requires_grad()
    y = fn(xt, wt, **kw)
    np.testing.assert_allclose(y.data(), ref_conv(x, w, **kw), rtol=1e-12, atol=1e-12)
    if x_shape[0]:
        check_first_order(lambda a, b: fn(a, b, **kw), [x, w])
    else:
        y.sum().backward()
        assert xt.grad().shape == x_shape
        np.testing.assert_array_equal(wt.grad().data(), np.zeros(w_shape))
        assert F.max_pool2d(xt, 2).shape == (0, 2, 2, 2)
        assert F.avg_pool2d(xt, 2).shape == (0, 2, 2, 2)


# --- PyTorch semantics of the max-pool gradient -------------------------------------------------

def _pool_grad(values, **kw) -> tuple[np.ndarray, np.ndarray]:
    x = Tensor(np.array(values, dtype=np.float64)).requires_grad()
    y = F.max_pool2d(x, **kw)
    y.sum().backward()
    return y.data().ravel(), x.grad().data().ravel()


def test_max_pool_ties_send_the_gradient_to_the_first_maximum() -> None:
    _, g = _pool_grad([[[[1.0, 1.0], [1.0, 0.0]]]], kernel_size=2)
    np.testing.assert_array_equal(g, [1, 0, 0, 0])
    # overlapping windows (torch gives [1, 0, 2, 0, 0])
    y, g = _pool_grad([[[[3.0, 1.0, 3.0, 3.0, 0.0]]]], kernel_size=(1, 3), stride=1)
    np.testing.assert_array_equal(y, [3, 3, 3])
    np.testing.assert_array_equal(g, [1, 0, 2, 0, 0])


def test_max_pool_nan_propagates_and_takes_the_gradient() -> None:
    # torch: the output is nan and the gradient goes to the window's last nan
    y, g = _pool_grad([[[[1.0, np.nan, 3.0, np.nan], [0.0, 5.0, 2.0, 1.0]]]], kernel_size=2)
    assert np.isnan(y).all()
    np.testing.assert_array_equal(g, [0, 1, 0, 1, 0, 0, 0, 0])
    _, g = _pool_grad([[[[np.nan, 7.0, np.nan, 2.0]]]], kernel_size=(1, 4))
    np.testing.assert_array_equal(g, [0, 0, 1, 0])


def test_max_pool_padding_is_never_the_maximum() -> None:
    x = -10.0 - _rng(3).uniform(0, 1, (1, 1, 4, 4))
    y, g = _pool_grad(x, kernel_size=3, stride=2, padding=1)
    assert (y < -10).all()
    assert g.sum() == y.size


def test_max_pool_gradient_with_infinite_upstream_stays_local() -> None:
    x = Tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]])).requires_grad()
    (F.max_pool2d(x, 2) * np.inf).sum().backward()
    np.testing.assert_array_equal(x.grad().data().ravel(), [0, 0, 0, np.inf])


def test_max_pool_double_backward_through_the_seed() -> None:
    """d/dseed <dL/dx(seed), v> = max_pool_select(x, v): v read at each window's argmax."""
    rng = _rng(4)
    x = Tensor(rng.permutation(36).reshape(1, 1, 6, 6).astype(np.float64)).requires_grad()
    seed = Tensor(rng.standard_normal((1, 1, 2, 2))).requires_grad()
    (gx,) = ap.grad((F.max_pool2d(x, 3) * seed).sum(), [x], create_graph=True)
    v = rng.standard_normal((1, 1, 6, 6))
    (gseed,) = ap.grad((gx * Tensor(v)).sum(), [seed])
    expected = np.empty((2, 2))
    for i, j in itertools.product(range(2), range(2)):
        window = x.data()[0, 0, 3 * i:3 * i + 3, 3 * j:3 * j + 3]
        a, b = np.unravel_index(np.argmax(window), (3, 3))
        expected[i, j] = v[0, 0, 3 * i + a, 3 * j + b]
    np.testing.assert_array_equal(gseed.data()[0, 0], expected)
    # and the op compiles to the same values
    fn = ap.compile(lambda a, u: conv_ops.max_pool_select(
        a, u, kernel_size=(3, 3), stride=(3, 3), padding=(0, 0), dilation=(1, 1),
        ceil_mode=False))
    np.testing.assert_array_equal(fn(Tensor(x.data()), Tensor(v)).data()[0, 0], expected)


# --- gradients of gradients ---------------------------------------------------------------------

def test_conv_gradient_penalty_second_order_matches_finite_differences() -> None:
    """d/dw ||dL/dx||^2 through conv_input_grad (whose VJP uses conv and conv_weight_grad)."""
    rng = _rng(5)
    x0 = rng.standard_normal((1, 2, 5, 5))
    w0 = rng.standard_normal((3, 2, 3, 3))

    def penalty(w: Tensor) -> Tensor:
        x = Tensor(x0).requires_grad()
        (gx,) = ap.grad(F.conv2d(x, w, stride=2, padding=1).tanh().sum(), [x],
                        create_graph=True)
        return (gx * gx).sum()

    w = Tensor(w0).requires_grad()
    (gw,) = ap.grad(penalty(w), [w])
    eps, numeric = 1e-6, np.zeros_like(w0)
    for i in np.ndindex(w0.shape):
        hi, lo = w0.copy(), w0.copy()
        hi[i] += eps
        lo[i] -= eps
        numeric[i] = (penalty(Tensor(hi)).item() - penalty(Tensor(lo)).item()) / (2 * eps)
    np.testing.assert_allclose(gw.data(), numeric, rtol=1e-5, atol=1e-7)


# --- kernels: widened-grid fast path, scratch buffers -------------------------------------------

def test_non_finite_values_do_not_leak_through_the_widened_grid() -> None:
    # an inf that only the dropped positions of the stride-1 fast path read
    x = np.array([[[[1.0, 2.0, np.inf], [3.0, 4.0, 5.0]]]])
    g = np.ones((1, 1, 2, 2))
    at = dict(stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)
    gw = conv_ops._conv_weight_grad_impl(x, g, kernel_size=(1, 2), **at)
    np.testing.assert_array_equal(gw.ravel(), [10.0, np.inf])
    w = np.array([[[[np.inf, 1.0]]]])
    gx = conv_ops._conv_input_grad_impl(g, w, size=(2, 3), **at)
    np.testing.assert_array_equal(gx[0, 0, :, 2], [1.0, 1.0])


def test_results_do_not_share_scratch_memory() -> None:
    rng = _rng(6)
    w = Tensor(rng.standard_normal((4, 3, 3, 3))).requires_grad()
    outs = []
    for seed in range(3):
        x = Tensor(_rng(seed).standard_normal((2, 3, 6, 6))).requires_grad()
        y = F.conv2d(x, w, padding=1)
        y.sum().backward()
        outs.append((x.data().copy(), y, x.grad()))
    for x, y, gx in outs:
        np.testing.assert_allclose(y.data(), ref_conv(x, w.data(), padding=1), rtol=1e-12)
        np.testing.assert_allclose(gx.data(), outs[0][2].data(), rtol=1e-12)  # same weights
    assert not np.shares_memory(outs[0][1].data(), outs[1][1].data())


def test_float32_stays_float32() -> None:
    x = Tensor(np.ones((1, 2, 5, 5), np.float32)).requires_grad()
    w = Tensor(np.ones((3, 2, 3, 3), np.float32)).requires_grad()
    y = F.max_pool2d(F.conv2d(x, w, padding=1), 2)
    y = F.avg_pool2d(y, 2, ceil_mode=True)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad().dtype == np.float32 and w.grad().dtype == np.float32


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,words", [
    (lambda: F.conv2d(ap.zeros((2, 3, 5, 5)), ap.zeros((4, 2, 3, 3))),
     ["conv2d", "expects 2 input channels, got 3", "float32[2, 3, 5, 5]", "float32[4, 2, 3, 3]"]),
    (lambda: F.conv2d(ap.zeros((2, 4, 5, 5)), ap.zeros((6, 2, 3, 3)), groups=3),
     ["conv2d", "groups=3 must divide", "(4)"]),
    (lambda: F.conv2d(ap.zeros((1, 1, 2, 5)), ap.zeros((1, 1, 3, 3))),
     ["conv2d", "kernel size [3, 3]", "larger than the padded input [2, 5]"]),
    (lambda: F.conv2d(ap.zeros((1, 1, 5, 5)), ap.zeros((1, 1, 3, 3)), ap.zeros(2)),
     ["conv2d", "bias must have shape [1]", "float32[2]"]),
    (lambda: F.conv2d(ap.zeros((1, 1, 5, 5)), ap.zeros((1, 1, 3, 3)), padding="full"),
     ["conv2d", "padding must be"]),
    (lambda: F.conv2d(ap.zeros((1, 1, 5, 5)), ap.zeros((1, 1, 3, 3)), stride=2, padding="same"),
     ["conv2d", "padding='same' needs stride 1"]),
    (lambda: F.conv2d(ap.zeros((1, 1, 5, 5)), ap.zeros((1, 1, 3, 3)), stride=0),
     ["conv2d", "stride must be at least 1"]),
    (lambda: F.conv2d(ap.zeros((5, 5)), ap.zeros((1, 1, 3, 3))),
     ["conv2d", "[N, C, H, W]", "float32[5, 5]"]),
    (lambda: F.conv1d(ap.zeros((1, 2, 5)), ap.zeros((1, 2, 3, 3))),
     ["conv1d", "weight", "float32[1, 2, 3, 3]"]),
    (lambda: F.max_pool2d(ap.zeros((1, 1, 5, 5)), 2, padding=2),
     ["max_pool2d", "padding [2, 2] must be at most half the kernel size"]),
    (lambda: F.max_pool2d(ap.zeros((1, 1, 2, 5)), 3),
     ["max_pool2d", "larger than the padded input [2, 5]"]),
    (lambda: F.avg_pool2d(ap.zeros((1, 1, 4, 4)), (2, 2, 2)),
     ["avg_pool2d", "kernel_size must be an int or 2 ints"]),
    (lambda: F.adaptive_avg_pool2d(ap.zeros((1, 1, 5, 4)), 2),
     ["adaptive_avg_pool2d", "must divide the input size [5, 4]"]),
])
def test_bad_arguments_raise_shape_errors_naming_op_shapes_and_dtypes(call, words) -> None:
    with pytest.raises(ShapeError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_integer_inputs_raise_dtype_errors() -> None:
    x = Tensor(np.ones((1, 1, 4, 4), np.int64))
    with pytest.raises(DTypeError, match="conv2d: needs floating-point operands"):
        F.conv2d(x, ap.zeros((1, 1, 3, 3)))
    with pytest.raises(DTypeError, match="max_pool2d"):
        F.max_pool2d(x, 2)


def test_compiled_calls_check_arguments_as_eager_does() -> None:
    fn = ap.compile(lambda x, w: F.conv2d(x, w))
    with pytest.raises(ShapeError, match="conv2d: weight"):
        fn(ap.zeros((2, 3, 5, 5)), ap.zeros((4, 2, 3, 3)))


def test_shape_rules_reject_what_the_kernels_cannot_do() -> None:
    rule = conv_ops.CONV.infer
    at = dict(stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)
    with pytest.raises(ValueError, match="expects 2 input channels, got 3"):
        rule(np.zeros((1, 3, 5, 5)), np.zeros((1, 2, 3, 3)), **at)
    with pytest.raises(ValueError, match="larger than the padded input"):
        rule(np.zeros((1, 2, 2, 5)), np.zeros((1, 2, 3, 3)), **at)
    assert rule(np.zeros((1, 2, 5, 5), np.float32), np.zeros((4, 2, 3, 3), np.float32),
                **at) == ((1, 4, 3, 3), np.float32)


# --- layers ---------------------------------------------------------------------------------------

def test_conv2d_layer_parameters_init_and_state_dict_like_pytorch() -> None:
    layer = nn.Conv2d(6, 8, (3, 5), stride=2, padding=1, groups=2, rng=0)
    assert layer.weight.shape == (8, 3, 3, 5) and layer.bias.shape == (8,)
    assert list(layer.state_dict()) == ["weight", "bias"]
    bound = 1 / math.sqrt(3 * 3 * 5)
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float32
        assert np.abs(p.data()).max() <= bound
    assert np.abs(layer.weight.data()).max() > 0.9 * bound  # spread over the whole range
    y = layer(Tensor(_rng(0).standard_normal((2, 6, 7, 9)).astype(np.float32)))
    expected = ref_conv(_rng(0).standard_normal((2, 6, 7, 9)).astype(np.float32),
                        layer.weight.data(), layer.bias.data(), stride=2, padding=1, groups=2)
    np.testing.assert_allclose(y.data(), expected, rtol=1e-5, atol=1e-5)
    assert repr(layer) == ("Conv2d(6, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1), "
                           "groups=2)")
    no_bias = nn.Conv2d(1, 2, 3, bias=False, dtype=np.float64, rng=1)
    assert no_bias.bias is None and list(no_bias.state_dict()) == ["weight"]
    assert no_bias.weight.dtype == np.float64
    np.testing.assert_array_equal(nn.Conv2d(1, 2, 3, rng=7).weight.data(),
                                  nn.Conv2d(1, 2, 3, rng=7).weight.data())


def test_conv_layer_errors() -> None:
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="groups=2 must divide in_channels"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="'same' needs stride 1"):
        nn.Conv1d(3, 4, 3, stride=2, padding="same")


def test_conv1d_pool_and_flatten_layers() -> None:
    x = _rng(1).standard_normal((2, 3, 10))
    conv = nn.Conv1d(3, 4, 3, padding="same", dtype=np.float64, rng=0)
    y = conv(Tensor(x))
    np.testing.assert_allclose(y.data(), ref_conv(x, conv.weight.data(), conv.bias.data(),
                                                  padding="same"), rtol=1e-12)
    assert nn.MaxPool1d(2)(y).shape == (2, 4, 5)
    img = Tensor(_rng(2).standard_normal((2, 3, 8, 8)))
    np.testing.assert_array_equal(nn.MaxPool2d(2)(img).data(), ref_max_pool(img.data(), 2))
    np.testing.assert_allclose(nn.AvgPool2d(3, 2, 1)(img).data(),
                               ref_avg_pool(img.data(), 3, 2, 1), rtol=1e-12)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(img).data(),
                               img.data().mean(axis=(2, 3), keepdims=True), rtol=1e-12)
    assert nn.Flatten()(img).shape == (2, 192)
    assert nn.Flatten(0)(img).shape == (384,)
    assert nn.Flatten(1, 2)(img).shape == (2, 24, 8)
    assert nn.Flatten(-2)(img).shape == (2, 3, 64)
    with pytest.raises(ShapeError, match="Flatten"):
        nn.Flatten(2, 1)(img)
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


# --- a small CNN: compiled equals eager -----------------------------------------------------------

class SmallCNN(nn.Module):
    def __init__(self) -> None:
        self.conv = nn.Conv2d(1, 4, 3, padding=1, dtype=np.float64, rng=0)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=np.float64, rng=1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6 * 2 * 2, 3, dtype=np.float64, rng=2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.pool(self.conv(x).relu())
        h = F.avg_pool2d(self.conv2(h).relu(), 1)
        return self.fc(self.flat(h))


def _cnn_batch(i: int) -> tuple[tuple, dict]:
    rng = np.random.default_rng(100 + i)
    return (rng.standard_normal((5, 1, 8, 8)), rng.integers(0, 3, 5)), {}


def _cnn_program() -> Program:
    model = SmallCNN()
    opt = ap.optim.SGD(model.parameters(), lr=0.1)

    def step(x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss

    return Program(step, {"model": model, "opt": opt}, _cnn_batch)


def test_small_cnn_training_compiled_equals_eager() -> None:
    assert run_differential(_cnn_program, calls=3) == "equal"


def test_small_cnn_training_lowers_the_loss_and_parameters_match_after_three_steps() -> None:
    eager, compiled = _cnn_program(), _cnn_program()
    fast = ap.compile(compiled.fn)
    (x, y), _ = _cnn_batch(0)
    losses = []
    for _ in range(3):
        losses.append(eager.fn(x, y).item())
        fast(x, y)
    assert losses[2] < losses[0]
    for (name, a), (_, b) in zip(eager.state["model"].named_parameters(),
                                 compiled.state["model"].named_parameters(), strict=True):
        np.testing.assert_allclose(b.data(), a.data(), rtol=1e-10, atol=1e-12, err_msg=name)
