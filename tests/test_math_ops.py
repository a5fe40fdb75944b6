"""Element-wise math, reductions and activations under PyTorch's names and semantics: the edge
cases the op cases (tests/cases_math.py) do not reach, and the bugs fixed with them.

Expected values are numpy formulas, or PyTorch's results written out (computed once with
PyTorch 2.x in float64; PyTorch is never imported here).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from gradcheck import check_first_order, check_second_order

import aprender as ap
import aprender.nn.functional as F
from aprender import nn
from aprender.autograd import Tensor
from aprender.errors import DTypeError, ShapeError
from aprender.ir import get_op
from aprender.ir.ops import special
from aprender.nn.functional import activations

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def grad_of(fn, *arrays, dtype=np.float64):
    """Gradients of ``fn(*tensors).sum()`` eagerly and compiled (they must agree)."""
    results = []
    for run in (fn, None):
        xs = [Tensor(np.asarray(a, dtype=dtype)).requires_grad() for a in arrays]
        if run is None:
            def step(*ts):
                out = fn(*ts)
                out.sum().backward()
                return out
            ap.compile(step)(*xs)
        else:
            run(*xs).sum().backward()
        results.append([x.grad().data().copy() for x in xs])
    for eager, fast in zip(*results, strict=True):
        np.testing.assert_array_equal(fast, eager)
    return results[0] if len(arrays) > 1 else results[0][0]


def compiled_value(fn, *arrays):
    return ap.compile(fn)(*[Tensor(np.asarray(a)) for a in arrays]).data()


# --- bugs: pow ---------------------------------------------------------------------------------

def test_pow_gradient_is_zero_where_flat_at_zero_as_pytorch() -> None:
    # x ** 0 is 1 everywhere: its gradient is 0, also at x = 0 (was 0 * 0**-1 = nan)
    np.testing.assert_array_equal(grad_of(lambda x: x ** 0.0, [0.0, 1.0, 2.0]), [0, 0, 0])
    np.testing.assert_array_equal(grad_of(lambda x: x ** 0, [0.0, -1.0]), [0, 0])
    # 0 ** y: d/dy = 0 ** y log 0 is 0 for y >= 0 (PyTorch), -inf for y < 0 (was nan)
    np.testing.assert_array_equal(grad_of(lambda y: 0.0 ** y, [0.0, 1.0, -1.0]),
                                  [0, 0, -np.inf])
    # tensor ** tensor: PyTorch gives a.grad [0, 0, 0], b.grad [0, 0, log 2]
    ga, gb = grad_of(lambda a, b: a ** b, [0.0, 0.0, 2.0], [0.0, 2.0, 0.0])
    np.testing.assert_array_equal(ga, [0, 0, 0])
    np.testing.assert_allclose(gb, [0, 0, math.log(2)], rtol=1e-15)
    # a negative exponent at 0 really is infinite (PyTorch: a.grad [-inf, inf], b.grad
    # [-inf, 0])
    ga, gb = grad_of(lambda a, b: a ** b, [0.0, 0.0], [-1.0, 0.5])
    np.testing.assert_array_equal(ga, [-np.inf, np.inf])
    np.testing.assert_array_equal(gb, [-np.inf, 0])


def test_pow_gradient_away_from_zero_is_unchanged() -> None:
    check_first_order(lambda a, b: a ** b, [np.array([0.5, 1.5, 2.0]), np.array([0.0, 2.0, -1.5])])
    check_second_order(lambda a, b: a ** b, [np.array([0.5, 1.5, 2.0]), np.array([0.5, 2.0, 3.0])])


def test_int_pow_int_keeps_numpy_integer_dtype() -> None:
    for dtype in (np.int64, np.int32, np.uint8):
        a = np.array([1, 2, 3], dtype=dtype)
        assert (Tensor(a) ** 2).dtype == (a ** 2).dtype
        np.testing.assert_array_equal((Tensor(a) ** 2).data(), a ** 2)
        assert Tensor(a).pow(np.int64(3)).dtype == a.dtype
        assert compiled_value(lambda t: t ** 2, a).dtype == (a ** 2).dtype
    a, b = np.array([2, 3], dtype=np.int64), np.array([3, 2], dtype=np.int64)
    got = Tensor(a) ** Tensor(b)
    assert got.dtype == np.int64 and got.tolist() == [8, 9]
    assert (2 ** Tensor(b)).dtype == np.int64
    # float exponents: float64, as numpy; float tensors keep their dtype with int exponents
    assert (Tensor(a) ** 2.0).dtype == np.float64
    assert (Tensor(np.ones(2, np.float32)) ** 2).dtype == np.float32
    with pytest.raises(DTypeError, match="negative integer powers"):
        Tensor(a) ** -1


# --- bugs: mean over nothing -------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis", [((2, 0), 1), ((0, 3), None), ((0, 3), 0), ((2, 0), 0)])
def test_mean_over_no_elements_has_an_empty_gradient(shape, axis) -> None:
    expected = np.mean(np.zeros(shape), axis=axis)
    for run in ("eager", "compiled"):
        x = Tensor(np.zeros(shape)).requires_grad()

        def step(t):
            m = t.mean(axis=axis)
            m.sum().backward()
            return m

        m = step(x) if run == "eager" else ap.compile(step)(x)
        np.testing.assert_array_equal(m.data(), expected)
        assert x.grad().shape == shape


# --- bugs: cross_entropy_rows validates eagerly ------------------------------------------------

def test_cross_entropy_rows_refuses_broadcast_targets_eagerly_and_compiled() -> None:
    logits = Tensor(np.zeros((4, 3))).requires_grad()
    targets = np.full((4, 1), 1 / 3)
    with pytest.raises(ShapeError) as eager:
        logits.cross_entropy_rows(targets)
    with pytest.raises(ShapeError) as fast:
        ap.compile(lambda z, t: z.cross_entropy_rows(t))(logits, Tensor(targets))
    for err in (eager, fast):
        assert "needs logits and targets of one shape [N, C], got [4, 3] and [4, 1]" \
            in str(err.value)


# --- bugs: 0-d axes ----------------------------------------------------------------------------

def test_zero_d_tensors_take_axis_0_and_minus_1_as_pytorch() -> None:
    x = Tensor(np.float32(3.0))
    for axis in (0, -1):
        assert x.softmax(axis).item() == 1.0 and x.softmax(axis).dtype == np.float32
        assert x.log_softmax(axis).item() == 0.0
        assert x.sum(axis).item() == 3.0 and x.sum(axis).shape == ()
        assert x.mean(dim=axis, keepdim=True).shape == ()
        assert x.amax(axis).item() == 3.0
        assert x.cumsum(axis).item() == 3.0
        assert x.argmax(axis).item() == 0
        assert x.logsumexp(axis).item() == 3.0
    assert compiled_value(lambda t: t.softmax(-1), np.float64(2.0)) == 1.0
    for bad in (1, -2):
        with pytest.raises(ShapeError, match="0 dimensions"):
            x.softmax(bad)
        with pytest.raises(ShapeError, match="0 dimensions"):
            x.sum(bad)
    g = Tensor(np.float64(2.0)).requires_grad()
    (g.softmax(-1) * 3.0 + g.sum(0)).backward()
    assert g.grad().item() == 1.0


# --- bugs: float16 gelu ------------------------------------------------------------------------

@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_float16_gelu_gradient_is_finite_far_out(approximate) -> None:
    # PyTorch (float16): gelu(1e4) = 1e4, gelu(-1e4) = 0; gradients 1 and 0
    x = Tensor(np.array([1e4, -1e4, 30.0, -30.0], dtype=np.float16)).requires_grad()
    y = x.gelu(approximate=approximate)
    y.sum().backward()
    np.testing.assert_array_equal(y.data(), np.array([1e4, 0, 30, 0], dtype=np.float16))
    assert x.grad().dtype == np.float16
    np.testing.assert_array_equal(x.grad().data(), [1, 0, 1, 0])


def test_gelu_second_order_is_unchanged_by_the_overflow_guard() -> None:
    x = np.array([-4.0, -1.0, 0.3, 2.0, 9.0, 11.0])
    check_first_order(lambda t: t.gelu(), [x])
    check_second_order(lambda t: t.gelu(), [x])


# --- bugs: NaN in max / maximum ----------------------------------------------------------------

def test_max_with_nan_sends_the_gradient_to_the_nan() -> None:
    # PyTorch: max() -> [0, 1, 0]; two NaNs share it evenly
    np.testing.assert_array_equal(grad_of(lambda x: x.max(), [1.0, np.nan, 3.0]), [0, 1, 0])
    np.testing.assert_array_equal(grad_of(lambda x: x.max(), [1.0, np.nan, np.nan]),
                                  [0, 0.5, 0.5])
    g = grad_of(lambda x: x.max(1), [[1.0, np.nan, 3.0], [3.0, 3.0, 1.0]])
    np.testing.assert_array_equal(g, [[0, 1, 0], [0.5, 0.5, 0]])
    np.testing.assert_array_equal(grad_of(lambda x: x.min(), [1.0, np.nan, -3.0]), [0, 1, 0])


def test_maximum_minimum_with_nan_give_both_inputs_the_gradient() -> None:
    a = [1.0, np.nan, 2.0, np.nan, 1.0]
    b = [np.nan, 1.0, 1.0, np.nan, 1.0]
    # PyTorch: maximum -> a.grad [1, 1, 1, 1, .5], b.grad [1, 1, 0, 1, .5]
    ga, gb = grad_of(lambda x, y: ap.maximum(x, y), a, b)
    np.testing.assert_array_equal(ga, [1, 1, 1, 1, 0.5])
    np.testing.assert_array_equal(gb, [1, 1, 0, 1, 0.5])
    # minimum -> a.grad [1, 1, 0, 1, .5], b.grad [1, 1, 1, 1, .5]
    ga, gb = grad_of(lambda x, y: ap.minimum(x, y), a, b)
    np.testing.assert_array_equal(ga, [1, 1, 0, 1, 0.5])
    np.testing.assert_array_equal(gb, [1, 1, 1, 1, 0.5])


# --- bugs: clip with lo > hi -------------------------------------------------------------------

def test_clip_gradient_follows_pytorch_also_when_lo_exceeds_hi() -> None:
    x = [0.0, 1.0, 1.5, 2.0, 3.0]
    y = Tensor(np.array(x)).clip(2.0, 1.0)
    np.testing.assert_array_equal(y.data(), [1, 1, 1, 1, 1])  # hi wins, as numpy and PyTorch
    np.testing.assert_array_equal(grad_of(lambda t: t.clip(2.0, 1.0), x), [0, 0, 0, 0, 0])
    # the bounds themselves pass the gradient (PyTorch: lo <= x <= hi); NaN does not
    np.testing.assert_array_equal(grad_of(lambda t: t.clip(1.0, 2.0), x + [np.nan]),
                                  [0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(grad_of(lambda t: t.clip(None, 1.0), x), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(grad_of(lambda t: t.clip(1.5, None), x), [0, 0, 1, 1, 1])


# --- bugs: an empty dim tuple reduces everything -----------------------------------------------

def test_empty_dim_tuple_reduces_over_every_axis_as_pytorch() -> None:
    x = np.arange(6.0).reshape(2, 3)
    t = Tensor(x)
    assert t.sum(axis=()).item() == 15.0
    assert t.sum(dim=[]).item() == 15.0
    assert t.mean(()).item() == 2.5
    assert t.amax(()).item() == 5.0 and t.amin(dim=()).item() == 0.0
    assert t.var(()).item() == pytest.approx(np.var(x, ddof=1), rel=1e-15)
    assert compiled_value(lambda v: v.sum(()), x) == 15.0
    np.testing.assert_array_equal(grad_of(lambda v: v.sum(()), x), np.ones((2, 3)))
    # any/all follow PyTorch (and numpy) there: an empty dim tuple reduces nothing
    b = Tensor(np.array([[0.0, 1.0]]))
    assert b.any(()).tolist() == [[False, True]] and b.all(dim=()).shape == (1, 2)


# --- sign, floor, round: gradient zero ---------------------------------------------------------

@pytest.mark.parametrize("method", ["sign", "floor", "round"])
def test_piecewise_constant_ops_have_zero_gradient_not_an_error(method) -> None:
    x = Tensor(np.array([-1.5, 0.0, 0.4, 2.5], dtype=np.float32)).requires_grad()
    y = getattr(x, method)()
    assert y.requires_grad_enabled()
    y.sum().backward()
    assert x.grad().dtype == np.float32
    np.testing.assert_array_equal(x.grad().data(), np.zeros(4))
    np.testing.assert_array_equal(grad_of(lambda t: getattr(t, method)() * t, [1.5, -2.25]),
                                  getattr(np, method)([1.5, -2.25]))


def test_round_is_half_to_even_as_pytorch() -> None:
    # PyTorch: round([0.5, 1.5, 2.5, -0.5]) = [0, 2, 2, -0]
    y = Tensor(np.array([0.5, 1.5, 2.5, -0.5])).round()
    np.testing.assert_array_equal(y.data(), [0, 2, 2, -0.0])
    assert np.signbit(y.data()[3])
    assert Tensor(np.array([1.25, 1.35])).round(1).tolist() == [1.2, 1.4]
    assert Tensor(np.array([1, -2])).floor().dtype == np.int64  # numpy's int floor


def test_isnan_isinf_on_any_dtype() -> None:
    x = Tensor(np.array([1.0, np.nan, np.inf, -np.inf]))
    assert x.isnan().tolist() == [False, True, False, False]
    assert x.isinf().tolist() == [False, False, True, True]
    assert Tensor(np.array([1, 2])).isnan().tolist() == [False, False]
    assert not x.isnan().requires_grad_enabled()


# --- erf ---------------------------------------------------------------------------------------

def _erf_points() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.uniform(-7, 7, 4000), rng.uniform(-0.6, 0.6, 1000),
                           np.logspace(-300, 1.6, 300), -np.logspace(-300, 1.6, 300),
                           [0.0, 0.46875, -0.46875, 4.0, -4.0, 26.5, 27.0, 1e300]])


def test_erf_without_scipy_is_accurate_to_float64() -> None:
    x = _erf_points()
    expected = np.array([math.erf(v) for v in x])
    got = special.erf_cody(x)
    nonzero = expected != 0
    rel = np.abs(got - expected)[nonzero] / np.abs(expected[nonzero])
    assert rel.max() < 2e-15
    np.testing.assert_array_equal(got[~nonzero], expected[~nonzero])
    specials = special.erf_cody(np.array([np.inf, -np.inf, np.nan, -0.0]))
    np.testing.assert_array_equal(specials[:2], [1, -1])
    assert np.isnan(specials[2]) and np.signbit(specials[3])


@pytest.mark.parametrize("use_scipy", [True, False], ids=["scipy", "cody"])
def test_erf_op_both_ways(use_scipy, monkeypatch) -> None:
    if use_scipy:
        pytest.importorskip("scipy")
    else:
        monkeypatch.setattr(special, "_scipy_erf", None)
    x = np.array([-3.0, -1.0, -0.2, 0.0, 0.5, 2.0, 6.0])
    expected = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(Tensor(x).erf().data(), expected, rtol=2e-15, atol=0)
    np.testing.assert_allclose(compiled_value(lambda t: t.erf(), x), expected, rtol=2e-15)
    assert Tensor(x.astype(np.float32)).erf().dtype == np.float32
    assert Tensor(np.array([1, 2])).erf().dtype == np.float64
    np.testing.assert_allclose(grad_of(lambda t: t.erf(), x),
                               2 / math.sqrt(math.pi) * np.exp(-x * x), rtol=1e-15)
    # the exact GELU is built on it: PyTorch's F.gelu(0.5) = 0.345731230637006559
    assert F.gelu(Tensor(np.array([0.5]))).item() == pytest.approx(0.345731230637006559,
                                                                   rel=1e-15)


# --- activations against PyTorch's values ------------------------------------------------------

X = np.array([-3.0, -0.5, 0.0, 0.5, 3.0, 25.0])
TORCH = {  # PyTorch 2.x, float64: value, gradient of the sum
    "gelu": ([-4.04969409489031040e-03, -1.54268769362993441e-01, 0.0,
              3.45731230637006559e-01, 2.99595030590510980e+00, 25.0],
             [-0.01194564720418392, 0.13250487534383712, 0.5, 0.86749512465616285,
              1.01194564720418390, 1.0]),
    "gelu_tanh": ([-3.63739208177299433e-03, -1.54285990174856058e-01, 0.0,
                   3.45714009825143942e-01, 2.99636260791822684e+00, 25.0], None),
    "silu": ([-0.14227761953270035, -0.18877033439907270, 0.0, 0.31122966560092730,
              2.85772238046729976, 24.99999999965280040],
             [-0.08810410601516962, 0.26003881269734819, 0.5, 0.73996118730265192,
              1.08810410601516927, 1.00000000033331204]),
    "elu": ([-0.66514905214249520, -0.27542853820115659, 0.0, 0.5, 3.0, 25.0],
            [0.03485094785750476, 0.42457146179884336, 0.7, 1.0, 1.0, 1.0]),
    "softplus": ([0.04858735157374206, 0.47407698418010669, 0.69314718055994529,
                  0.97407698418010669, 3.04858735157374205, 25.0], None),
    "softplus_beta": ([1.23784256886522474e-03, 1.56630843759111432e-01, 3.46573590279972643e-01,
                       6.56630843759111404e-01, 3.0, 25.0],
                      [0.00247262315663477, 0.26894142136999510, 0.5, 0.73105857863000490,
                       1.0, 1.0]),
    "leaky_relu": ([-0.6, -0.1, 0.0, 0.5, 3.0, 25.0], [0.2, 0.2, 0.2, 1, 1, 1]),
}
CALLS = {
    "gelu": lambda t: F.gelu(t), "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "silu": F.silu, "elu": lambda t: F.elu(t, 0.7), "softplus": F.softplus,
    "softplus_beta": lambda t: F.softplus(t, beta=2, threshold=1),
    "leaky_relu": lambda t: F.leaky_relu(t, negative_slope=0.2),
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_activation_values_and_gradients_match_pytorch(name) -> None:
    value, grad = TORCH[name]
    fn = CALLS[name]
    np.testing.assert_allclose(fn(Tensor(X)).data(), value, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(compiled_value(fn, X), value, rtol=1e-14, atol=1e-300)
    if grad is not None:
        np.testing.assert_allclose(grad_of(fn, X), grad, rtol=1e-14)


def test_softplus_threshold_regime_is_exactly_linear() -> None:
    assert F.softplus(Tensor(np.array([25.0]))).item() == 25.0  # PyTorch: exactly x
    assert Tensor(np.array([25.0])).softplus().item() != 25.0  # the seed's: log(1 + e^x)
    x = Tensor(np.array([1e4, -1e4], dtype=np.float32)).requires_grad()
    y = F.softplus(x, beta=3.0)
    y.sum().backward()
    np.testing.assert_array_equal(y.data(), [1e4, 0])
    np.testing.assert_array_equal(x.grad().data(), [1, 0])


def test_elu_second_order_is_finite_for_large_inputs() -> None:
    x = Tensor(np.array([800.0, -800.0, 1.0])).requires_grad()
    (g,) = ap.grad(x.elu().sum(), [x], create_graph=True)
    (h,) = ap.grad(g.sum(), [x])
    np.testing.assert_array_equal(h.data(), [0, math.exp(-800.0), 0])


def test_functional_softmax_dim_dtype_and_aliases() -> None:
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    e = np.exp(x - x.max(1, keepdims=True))
    expected = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(F.softmax(Tensor(x), dim=1).data(), expected, rtol=1e-6)
    np.testing.assert_allclose(F.softmax(Tensor(x), 1, dtype=np.float64).data(), expected,
                               rtol=1e-6)
    assert F.softmax(Tensor(x), 1, dtype=np.float64).dtype == np.float64
    np.testing.assert_allclose(F.log_softmax(Tensor(x), axis=1).data(), np.log(expected),
                               rtol=1e-6)
    np.testing.assert_allclose(Tensor(x).softmax(dim=0).data(), Tensor(x).softmax(0).data())
    with pytest.raises(ShapeError, match="pass one of them"):
        Tensor(x).softmax(axis=0, dim=1)
    assert F.relu(np.array([-1.0, 2.0], dtype=np.float32)).dtype == np.float32  # wrapped
    with pytest.raises(DTypeError, match="relu: input must be a Tensor"):
        F.relu([1.0])
    assert set(activations.__all__) == {"relu", "leaky_relu", "gelu", "silu", "elu", "softplus",
                              "softmax", "log_softmax", "sigmoid", "tanh"}


def test_gelu_method_default_stays_the_seeds_tanh_form() -> None:
    x = Tensor(np.array([1.0]))
    assert x.gelu().item() == pytest.approx(0.8411919906082768, rel=1e-15)  # tanh form
    assert x.gelu("none").item() == pytest.approx(0.8413447460685429, rel=1e-15)  # x Phi(x)
    with pytest.raises(ShapeError, match="approximate"):
        x.gelu("fast")


# --- reductions --------------------------------------------------------------------------------

def test_dim_and_keepdim_aliases_beside_axis_and_keepdims() -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    t = Tensor(x)
    np.testing.assert_array_equal(t.sum(dim=1, keepdim=True).data(), x.sum(1, keepdims=True))
    np.testing.assert_array_equal(t.sum(1, True).data(), x.sum(1, keepdims=True))
    np.testing.assert_array_equal(t.mean(dim=(0, 2)).data(), x.mean((0, 2)))
    np.testing.assert_array_equal(t.max(dim=-1).data(), x.max(-1))  # values, not a pair
    np.testing.assert_array_equal(t.min(axis=0, keepdim=True).data(), x.min(0, keepdims=True))
    np.testing.assert_array_equal(t.amax(1, keepdims=True).data(), x.max(1, keepdims=True))
    with pytest.raises(ShapeError, match="pass one of them"):
        t.sum(axis=0, dim=1)
    with pytest.raises(ShapeError, match="pass one of them"):
        t.mean(0, keepdims=True, keepdim=False)
    with pytest.raises(ShapeError, match="out of range"):
        t.sum(dim=3)


def test_argmax_argmin_as_pytorch() -> None:
    x = Tensor(np.array([[1.0, 5.0, 5.0], [2.0, 2.0, 0.0]]))
    assert x.argmax(1).tolist() == [1, 0]  # first occurrence on ties
    assert x.argmin(1).tolist() == [0, 2]
    assert x.argmax().item() == 1 and x.argmax().shape == ()
    assert x.argmax(dim=None, keepdim=True).shape == (1, 1)  # PyTorch: tensor([[1]])
    assert x.argmax(0, keepdim=True).tolist() == [[1, 0, 0]]
    assert x.argmax(1).dtype == np.int64
    nan = Tensor(np.array([1.0, np.nan, 3.0, np.nan]))
    assert nan.argmax().item() == 1 and nan.argmin().item() == 1  # NaN wins, as PyTorch
    with pytest.raises(ShapeError, match="length 0"):
        Tensor(np.zeros((2, 0))).argmax(1)
    with pytest.raises(ShapeError, match="one int"):
        x.argmax((0, 1))
    assert compiled_value(lambda t: t.argmax(1), x.data()).tolist() == [1, 0]


def test_amax_amin_ties_share_the_gradient_evenly() -> None:
    x = [[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]]
    np.testing.assert_array_equal(grad_of(lambda t: t.amax(1), x),
                                  [[0, 0.5, 0.5], [0.5, 0, 0.5]])
    np.testing.assert_array_equal(grad_of(lambda t: t.amin(1), x), [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(grad_of(lambda t: t.amin(0), [[1.0, 2.0], [1.0, 0.0]]),
                                  [[0.5, 0], [0.5, 1]])
    np.testing.assert_array_equal(grad_of(lambda t: t.amax(), x), [[0, 0.5, 0.5], [0, 0, 0]])
    # reducing an empty axis has no identity; an empty tensor reduced elsewhere is fine
    with pytest.raises(ShapeError, match="length 0"):
        Tensor(np.zeros((0, 3))).amax(0)
    assert Tensor(np.zeros((0, 3))).amax(1).shape == (0,)


def test_var_std_corrections_and_degenerate_counts() -> None:
    x = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]])
    t = Tensor(x)
    np.testing.assert_allclose(t.var(1).data(), x.var(1, ddof=1), rtol=1e-15)
    np.testing.assert_allclose(t.var(1, unbiased=False).data(), x.var(1), rtol=1e-15)
    np.testing.assert_allclose(t.std(1, correction=0.5).data(), x.std(1, ddof=0.5), rtol=1e-15)
    np.testing.assert_allclose(t.std(dim=1, keepdim=True).data(), x.std(1, ddof=1,
                                                                         keepdims=True))
    with pytest.raises(ShapeError, match="not both"):
        t.var(1, unbiased=True, correction=1)
    # a constant slice: std 0, and PyTorch's gradient there is 0, not 0 / 0
    np.testing.assert_array_equal(grad_of(lambda v: v.std(1), x)[1], [0, 0, 0])
    # PyTorch: var of one element (correction 1) is NaN with a NaN gradient; with dim given
    # and N == correction the gradient is inf * (x - mean)
    one = Tensor(np.array([2.0])).requires_grad()
    v = one.var()
    v.backward()
    assert np.isnan(v.item()) and np.isnan(one.grad().item())
    g = grad_of(lambda v: v.var(dim=1, correction=3) * -2.0, [[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(g, [[np.inf, np.nan, -np.inf]])
    assert Tensor(np.array([1, 2, 4])).var().dtype == np.float64


def test_prod_gradient_with_zeros_as_pytorch() -> None:
    np.testing.assert_array_equal(grad_of(lambda t: t.prod(), [2.0, 0.0, 3.0]), [0, 6, 0])
    np.testing.assert_array_equal(grad_of(lambda t: t.prod(), [2.0, 0.0, 0.0]), [0, 0, 0])
    x = np.array([[2.0, 0.0, 3.0, 1.5], [0.0, 0.0, 2.0, -1.0], [0.0, 0.0, 0.0, 1.0],
                  [1.0, 2.0, 3.0, 4.0]])
    # a polynomial: finite differences are exact enough at zeros too, at both orders
    for fn in (lambda t: t.prod(1), lambda t: t.prod(), lambda t: t.prod(dim=0, keepdim=True)):
        check_first_order(fn, [x])
        check_second_order(fn, [x])
    assert Tensor(np.array([2, 3], dtype=np.int32)).prod().dtype == np.int64  # as numpy
    assert Tensor(np.zeros((2, 0))).prod(1).tolist() == [1.0, 1.0]


def test_logsumexp_is_stable() -> None:
    x = Tensor(np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [-np.inf, 0.0]])).requires_grad()
    y = x.logsumexp(1)
    np.testing.assert_allclose(y.data(), [1000 + math.log(2), -1000 + math.log(2), 0.0],
                               rtol=1e-15)
    y.sum().backward()
    np.testing.assert_allclose(x.grad().data(), [[0.5, 0.5], [0.5, 0.5], [0, 1]], rtol=1e-12)
    # PyTorch: all -inf gives -inf; inf gives inf; nothing gives -inf
    assert Tensor(np.array([-np.inf, -np.inf])).logsumexp(0).item() == -np.inf
    assert Tensor(np.array([np.inf, 1.0])).logsumexp(0).item() == np.inf
    assert Tensor(np.zeros((2, 0))).logsumexp(1).tolist() == [-np.inf, -np.inf]
    assert Tensor(np.array([1, 2])).logsumexp(0).dtype == np.float64


def test_any_all_cumsum() -> None:
    x = Tensor(np.array([[0.0, 1.0], [0.0, 0.0]]))
    assert x.any(1).tolist() == [True, False] and x.all(0).tolist() == [False, False]
    assert x.any().item() is True and x.any(dim=1, keepdim=True).shape == (2, 1)
    assert Tensor(np.zeros((2, 0))).all(1).tolist() == [True, True]
    c = Tensor(np.array([[1, 2, 3]], dtype=np.int32)).cumsum(1)
    assert c.dtype == np.int64 and c.tolist() == [[1, 3, 6]]  # as numpy and PyTorch
    assert Tensor(np.array([True, True])).cumsum(0).tolist() == [1, 2]
    # the gradient of a running sum: running sums from the end
    np.testing.assert_array_equal(grad_of(lambda t: t.cumsum(1) * Tensor(np.array([1.0, 2, 3])),
                                          [[5.0, 6.0, 7.0]]), [[6, 5, 3]])
    with pytest.raises(ShapeError, match="needs dim"):
        x.cumsum()


def test_shape_rules_of_unrecorded_ops() -> None:
    """Ops without gradients record no node eagerly, so test_ops' shape check does not see
    them: their rules are checked against their kernels here."""
    x = np.array([[0.0, np.nan, 2.0], [np.inf, -1.0, 0.0]])
    calls = [("isnan", {}), ("isinf", {}), ("argmax", {"axis": 1, "keepdims": False}),
             ("argmax", {"axis": None, "keepdims": True}), ("argmin", {"axis": 0,
                                                                       "keepdims": True}),
             ("any", {"axis": (1,), "keepdims": False}), ("all", {"axis": None,
                                                                  "keepdims": True}),
             ("zeros_like", {})]
    for name, attrs in calls:
        for dtype in (np.float64, np.float32, np.int64):
            t = Tensor(np.nan_to_num(x).astype(dtype) if dtype == np.int64 else x.astype(dtype))
            op = get_op(name)
            out = op.impl(t.data(), **attrs)
            assert op.infer(t, **attrs) == (np.shape(out), np.asarray(out).dtype), name


# --- layers ------------------------------------------------------------------------------------

def test_activation_layers_match_the_functions() -> None:
    x = Tensor(X)
    for layer, fn in ((nn.SiLU(), F.silu), (nn.ELU(0.5), lambda t: F.elu(t, 0.5)),
                      (nn.Softplus(2.0, 1.0), lambda t: F.softplus(t, 2.0, 1.0)),
                      (nn.Softplus(), F.softplus),
                      (nn.GELU(approximate="none"), F.gelu),
                      (nn.GELU("tanh"), lambda t: F.gelu(t, approximate="tanh")),
                      (nn.LeakyReLU(negative_slope=0.3), lambda t: F.leaky_relu(t, 0.3)),
                      (nn.LogSoftmax(dim=0), lambda t: F.log_softmax(t, 0)),
                      (nn.Softmax(dim=0), lambda t: F.softmax(t, 0))):
        np.testing.assert_array_equal(layer(x).data(), fn(x).data())
    assert nn.Identity(3, key="ignored")(x) is x
    assert nn.Softmax(axis=1).dim == 1 and nn.Softmax(1).axis == 1
    assert nn.LeakyReLU(slope=0.2).negative_slope == 0.2
    assert nn.GELU().approximate == "tanh"  # the seed's default (x.gelu()); PyTorch's: "none"
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    assert "approximate='none'" in repr(nn.GELU("none"))


def test_model_with_new_layers_compiles_to_the_eager_step() -> None:
    from differential import Program, run_differential

    from aprender import optim

    def build() -> Program:
        model = nn.Sequential(nn.Linear(5, 8, rng=0, dtype=np.float64), nn.SiLU(),
                              nn.Linear(8, 8, rng=1, dtype=np.float64), nn.GELU("none"),
                              nn.Linear(8, 8, rng=2, dtype=np.float64), nn.ELU(0.5),
                              nn.Softplus(beta=2.0, threshold=2.0), nn.Identity(),
                              nn.Linear(8, 3, rng=3, dtype=np.float64), nn.LogSoftmax(dim=1))
        opt = optim.SGD(model.parameters(), lr=0.1)

        def step(x: np.ndarray, y: np.ndarray) -> Tensor:
            opt.zero_grad()
            logp = model(Tensor(x))
            loss = -(logp * Tensor(y)).sum(dim=1).mean() + logp.logsumexp(1).var()
            loss.backward()
            opt.step()
            return loss

        def args(i: int) -> tuple:
            rng = np.random.default_rng(i)
            return (rng.standard_normal((6, 5)), np.eye(3)[rng.integers(0, 3, 6)]), {}

        return Program(step, {"model": model, "opt": opt}, args)

    assert run_differential(build, calls=3) == "equal"


def test_no_runtime_warning_is_needed_for_ordinary_values() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = Tensor(np.array([-2.0, 0.5, 3.0])).requires_grad()
        (x.elu() + x.silu() + F.softplus(x) + x.gelu("none") + x.erf()).sum().backward()


def test_shape_rule_dtype_depends_on_the_attribute_type() -> None:
    """``pow(2)`` keeps an integer tensor integer, ``pow(2.0)`` makes it float; the shape
    rule's dtype must not mix them up after seeing one (a cached rule once did)."""
    t = ap.Tensor(np.arange(3))
    assert ap.trace(lambda t: t.pow(2), t).outputs[0].dtype == np.int64
    assert ap.trace(lambda t: t.pow(2.0), t).outputs[0].dtype == np.float64
    np.testing.assert_array_equal(ap.compile(lambda t: t.pow(2.0))(t).data(), [0.0, 1.0, 4.0])
