"""``vmap`` of convolution, pooling, random and collective ops in the configurations the op
cases do not reach: batched weights (per-example weights and weight gradients), one operand of
a gradient op unbatched, every ``randomness`` mode, and an all-reduce of the whole batch.
Each is compared with a loop over the examples."""

from __future__ import annotations

import numpy as np
import pytest
from cases_conv import ref_conv

import aprender as ap
import aprender.nn.functional as F
from aprender.autograd import Tensor
from aprender.errors import TransformError
from aprender.ir.ops import collective
from aprender.ir.ops.conv import (
    avg_pool_grad,
    conv,
    conv_input_grad,
    conv_weight_grad,
    max_pool_grad,
    max_pool_select,
)
from aprender.runtime.random import Generator

B = 3
RNG = np.random.default_rng(0)
#: a grouped, strided, padded, dilated 2-D geometry: x [N, C, H, W], w [O, C/groups, kh, kw]
GEOMETRY = {"stride": (2, 1), "padding": ((1, 1), (2, 0)), "dilation": (1, 2), "groups": 2}
X_SHAPE, W_SHAPE, G_SHAPE = (2, 4, 6, 7), (6, 2, 3, 2), (2, 6, 3, 7)
#: which operands carry the batch: both, the first only, the second only
IN_AXES = [(0, 0), (0, None), (None, 0)]


def _operands(shapes: tuple, in_axes: tuple) -> list[np.ndarray]:
    return [RNG.standard_normal((B, *s) if a == 0 else s) for s, a in zip(shapes, in_axes,
                                                                          strict=True)]


def _loop(fn, arrays: list[np.ndarray], in_axes: tuple) -> np.ndarray:
    """``fn`` on each example (an unbatched operand shared), the results stacked."""
    return np.stack([fn(*[Tensor(a[i] if ax == 0 else a) for a, ax in zip(arrays, in_axes,
                                                                          strict=True)]).data()
                     for i in range(B)])


def _check(fn, shapes: tuple, in_axes: tuple) -> None:
    arrays = _operands(shapes, in_axes)
    got = ap.func.vmap(fn, in_axes=in_axes)(*[Tensor(a) for a in arrays])
    np.testing.assert_allclose(got.data(), _loop(fn, arrays, in_axes), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_axes", IN_AXES)
def test_conv_with_per_example_weights(in_axes):
    _check(lambda x, w: conv(x, w, **GEOMETRY), (X_SHAPE, W_SHAPE), in_axes)


def test_conv_with_per_example_weights_matches_the_reference():
    x, w = RNG.standard_normal((B, *X_SHAPE)), RNG.standard_normal((B, *W_SHAPE))
    got = ap.func.vmap(lambda a, b: F.conv2d(a, b, stride=(2, 1), padding=1, dilation=(1, 2),
                                             groups=2))(Tensor(x), Tensor(w))
    want = np.stack([ref_conv(x[i], w[i], stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
                     for i in range(B)])
    np.testing.assert_allclose(got.data(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_axes", IN_AXES)
def test_conv_input_grad(in_axes):
    _check(lambda g, w: conv_input_grad(g, w, size=X_SHAPE[2:], **GEOMETRY),
           (G_SHAPE, W_SHAPE), in_axes)


@pytest.mark.parametrize("in_axes", IN_AXES)
def test_conv_weight_grad_per_example(in_axes):
    _check(lambda x, g: conv_weight_grad(x, g, kernel_size=W_SHAPE[2:], **GEOMETRY),
           (X_SHAPE, G_SHAPE), in_axes)


def test_per_example_weight_gradients_of_a_conv_net():
    """vmap(grad) with respect to a shared weight: the per-example weight gradients (the
    weight-gradient op with batched images and batched output gradients), and the gradients
    with respect to per-example weights (batched weights all along)."""
    x = RNG.standard_normal((B, 2, 3, 5, 5))
    w = RNG.standard_normal((4, 3, 3, 3))
    ws = RNG.standard_normal((B, 4, 3, 3, 3))

    def loss(img, weight):
        y = F.max_pool2d(F.conv2d(img, weight, padding=1).relu(), 2)
        return (y * y * y).sum()

    grads = ap.func.grad(loss, argnums=(0, 1))
    for in_axes, weights in (((0, None), w), ((0, 0), ws)):
        gx, gw = ap.func.vmap(grads, in_axes=in_axes)(Tensor(x), Tensor(weights))
        for i in range(B):
            xi = Tensor(x[i]).requires_grad()
            wi = Tensor(weights if in_axes[1] is None else weights[i]).requires_grad()
            loss(xi, wi).backward()
            np.testing.assert_allclose(gx.data()[i], xi.grad().data(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(gw.data()[i], wi.grad().data(), rtol=1e-10, atol=1e-12)


def test_per_example_weight_gradients_compiled():
    x, w = RNG.standard_normal((B, 2, 3, 6, 6)), RNG.standard_normal((4, 3, 3, 3))
    per_example = ap.func.vmap(ap.func.grad(lambda a, b: F.conv2d(a, b, stride=2).square()
                                            .sum(), argnums=1), in_axes=(0, None))
    fast = ap.compile(per_example)
    for _ in range(2):
        np.testing.assert_allclose(fast(Tensor(x), Tensor(w)).data(),
                                   per_example(Tensor(x), Tensor(w)).data(), rtol=1e-12)
        x = x + 1.0


POOL = {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0), "dilation": (1, 2),
        "ceil_mode": True}


@pytest.mark.parametrize("in_axes", IN_AXES)
@pytest.mark.parametrize("op", [max_pool_grad, max_pool_select])
def test_max_pool_gradient_ops(op, in_axes):
    x_shape = (2, 3, 6, 7)
    pooled = (2, 3, 4, 5)
    shapes = (x_shape, pooled if op is max_pool_grad else x_shape)
    _check(lambda x, u: op(x, u, **POOL), shapes, in_axes)


def test_avg_pool_grad():
    at = {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1), "ceil_mode": True,
          "count_include_pad": False, "divisor_override": None}
    _check(lambda g: avg_pool_grad(g, size=(6, 7), **at), ((2, 3, 4, 4),), (0,))


# --- random ------------------------------------------------------------------------------------

def _noisy(x: Tensor, gen: Generator) -> Tensor:
    return F.dropout(x, 0.5, generator=gen)


def test_random_draws_refused_by_default():
    gen = Generator(5)
    with pytest.raises(TransformError, match="randomness='different'.*randomness='same'"):
        ap.func.vmap(lambda x: _noisy(x, gen))(Tensor(np.ones((B, 40))))
    assert gen.state.data().tolist() == [5, 0]   # nothing advanced


@pytest.mark.parametrize("randomness", ["same", "different"])
def test_dropout_in_vmap(randomness):
    gen = Generator(5)
    x = RNG.uniform(1, 2, (B, 40))
    got = ap.func.vmap(lambda a: _noisy(a, gen), randomness=randomness)(Tensor(x)).data()
    assert gen.state.data().tolist() == [5, 1]   # the counter update applied once
    first = _noisy(Tensor(x[0]), Generator(5)).data()   # one call at the same state
    np.testing.assert_array_equal(got[0], first)
    kept = got != 0
    np.testing.assert_allclose(got[kept], 2 * x[kept], rtol=1e-15)
    if randomness == "same":
        assert all((kept[i] == kept[0]).all() for i in range(B))
    else:
        assert not any((kept[i] == kept[0]).all() for i in range(1, B))
        # the examples' masks are the rows of one [B, 40] draw from the stream
        stream = np.random.Generator(np.random.Philox(key=5, counter=(0, 0, 0, 0)))
        np.testing.assert_array_equal(kept, stream.random((B, 40)) >= 0.5)


def test_compiled_vmap_draws_what_eager_vmap_draws():
    gens = Generator(5), Generator(5)
    eager, fast = (ap.func.vmap(lambda a, g=g: _noisy(a, g), randomness="different")
                   for g in gens)
    fast = ap.compile(fast)
    x = RNG.uniform(1, 2, (B, 10))
    for step in range(1, 3):
        np.testing.assert_array_equal(fast(Tensor(x)).data(), eager(Tensor(x)).data())
        assert [g.state.data().tolist() for g in gens] == [[5, step]] * 2


def test_nested_vmap_draws_differ_per_example():
    gen = Generator(9)
    draw = ap.func.vmap(ap.func.vmap(lambda x: x + ap.rand(4, generator=gen, dtype=np.float64),
                                     randomness="different"), randomness="different")
    got = draw(Tensor(np.zeros((2, B, 4)))).data()
    assert got.shape == (2, B, 4)
    assert len({tuple(row) for row in got.reshape(-1, 4)}) == 2 * B
    assert gen.state.data().tolist() == [9, 1]


def test_batched_generator_state_is_refused():
    states = np.array([[1, 0], [2, 0], [3, 0]], dtype=np.uint64)
    with pytest.raises(TransformError, match="random cannot batch a batched generator state"):
        ap.func.vmap(lambda s: s.draw((4,)), randomness="different")(Tensor(states))


# --- collectives -------------------------------------------------------------------------------

def test_all_reduce_reduces_the_whole_batch_in_one_collective():
    calls = []

    def two_ranks(x, op, group):   # as if a second rank held the same values
        calls.append(x.shape)
        return x * 2.0 if op == "sum" else x.copy()

    collective.set_backend(two_ranks)
    try:
        x = RNG.standard_normal((B, 3, 4))
        got = ap.func.vmap(lambda a: a.all_reduce("sum") * a)(Tensor(x))
    finally:
        collective.set_backend(None)
    assert calls.count((B, 3, 4)) == 1   # (vmap's trace also runs it on one example)
    np.testing.assert_allclose(got.data(), 2.0 * x * x, rtol=1e-15)
