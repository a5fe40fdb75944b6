"""Every op: values against plain numpy, gradients against finite differences (float64),
second order where the op is smooth, and each op's shape rule against its kernel."""

from __future__ import annotations

import numpy as np
import opcases
import pytest
from gradcheck import check_first_order
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from opcases import Case, distinct

import aprender as ap
from aprender.autograd import Tensor
from aprender.ir import all_ops

ALL_CASES, INDIRECT = opcases.all_cases()
ids = [c.name for c in ALL_CASES]
assert len(set(ids)) == len(ids), "op case names must be unique"


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_values_match_numpy(case: Case) -> None:
    opcases.check_values(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_values_float32(case: Case) -> None:
    opcases.check_float32(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_first_order_gradients(case: Case) -> None:
    opcases.check_first(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_second_order_gradients(case: Case) -> None:
    opcases.check_second(case)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.grads], ids=lambda c: c.name)
def test_gradient_dtype_and_shape_follow_the_leaf(case: Case) -> None:
    xs = [Tensor(a.astype(np.float32)).requires_grad() for a in opcases.inputs(case)]
    case.fn(*xs, *case.fixed).sum().backward()
    for x in xs:
        assert x.grad().dtype == np.float32 and x.grad().shape == x.shape


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_shape_rule_agrees_with_kernel(case: Case) -> None:
    opcases.check_shape_rule(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_compiled_equals_eager(case: Case) -> None:
    opcases.check_compiled(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_vmap_equals_a_loop(case: Case) -> None:
    opcases.check_vmap(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_jvp_matches_finite_differences(case: Case) -> None:
    opcases.check_jvp(case)


#: ops vmap cannot batch, and why
NO_BATCHING_RULE = {
    "constant": "has no inputs, so it is never batched",
}


def test_every_registered_op_has_a_batching_rule() -> None:
    missing = sorted(name for name, op in all_ops().items()
                     if op.batch is None and name not in NO_BATCHING_RULE)
    assert not missing, f"ops with no batching rule: {missing}"


def test_every_registered_op_has_a_case_or_is_covered_indirectly() -> None:
    seen = set().union(*(opcases.check_shape_rule(c) for c in ALL_CASES))
    missing = set(all_ops()) - seen - INDIRECT
    assert not missing, f"ops with no case: {sorted(missing)}"
    assert not INDIRECT - set(all_ops()), "INDIRECT names ops that do not exist"


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "maximum": (ap.maximum, np.maximum),
    "minimum": (ap.minimum, np.minimum),
    "power": (lambda a, b: a ** b, np.power),
}


@settings(max_examples=15, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       op=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2**16))
def test_binary_broadcasting_gradients(shapes, op, seed) -> None:
    fn, ref = BINARY[op]
    rng = np.random.default_rng(seed)
    a, b = (distinct(rng, s) + 0.5 for s in shapes.input_shapes)
    np.testing.assert_allclose(fn(Tensor(a), Tensor(b)).data(), ref(a, b), rtol=1e-12)
    check_first_order(fn, [a, b], rtol=1e-5, atol=1e-7)


@settings(max_examples=10, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data())
def test_reductions_over_random_axes(shape, data) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    keep = data.draw(st.booleans())
    x = distinct(np.random.default_rng(0), tuple(shape))
    for method, ref in (("sum", np.sum), ("mean", np.mean), ("max", np.max)):
        fn = lambda t, m=method: getattr(t, m)(axis, keepdims=keep)  # noqa: E731
        np.testing.assert_allclose(fn(Tensor(x)).data(), ref(x, axis=axis, keepdims=keep))
        check_first_order(fn, [x], rtol=1e-5, atol=1e-7)


def test_comparisons_are_bool_and_record_nothing() -> None:
    a = Tensor([1.0, 2.0, 3.0]).requires_grad()
    for got, ref in ((a > 2, [False, False, True]), (a >= 2, [False, True, True]),
                     (a < 2, [True, False, False]), (a <= 2, [True, True, False]),
                     (a == 2, [False, True, False]), (a != 2, [True, False, True])):
        assert got.dtype == np.bool_ and got.tolist() == ref
        assert got.is_leaf() and not got.requires_grad_enabled()


def test_max_ties_share_gradient_evenly() -> None:
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]).requires_grad()
    x.max_axis(1).sum().backward()
    np.testing.assert_allclose(x.grad().data(), [[0, 0.5, 0.5], [1, 0, 0]])


def test_maximum_tie_splits_gradient() -> None:
    a, b = Tensor([1.0, 2.0]).requires_grad(), Tensor([1.0, 1.0]).requires_grad()
    ap.maximum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad().data(), [0.5, 1.0])
    np.testing.assert_allclose(b.grad().data(), [0.5, 0.0])


def test_relu_gradient_at_zero_is_zero_and_leaky_uses_slope_at_zero() -> None:
    x = Tensor([0.0, 1.0]).requires_grad()
    x.relu().sum().backward()
    np.testing.assert_allclose(x.grad().data(), [0.0, 1.0])
    y = Tensor([0.0, -2.0, 3.0]).requires_grad()
    y.leaky_relu(0.2).sum().backward()
    np.testing.assert_allclose(y.grad().data(), [0.2, 0.2, 1.0])


def test_log_sqrt_pow_add_no_epsilon() -> None:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Tensor([0.0]).log().item() == -np.inf
        assert Tensor([0.0]).sqrt().item() == 0.0


def test_softmax_is_stable_for_huge_logits() -> None:
    x = Tensor([[1000.0, 0.0, -1000.0], [5e4, 5e4, 0.0]]).requires_grad()
    p = x.softmax()
    assert np.isfinite(p.data()).all()
    np.testing.assert_allclose(p.data(), [[1, 0, 0], [0.5, 0.5, 0]], atol=1e-7)
    lp = x.log_softmax()
    assert np.isfinite(lp.data()[:, :2]).all()
    (lp[:, 0]).sum().backward()
    assert np.isfinite(x.grad().data()).all()


def test_gelu_value_from_the_spec() -> None:
    assert abs(Tensor([1.0]).gelu().item() - 0.8411920) < 1e-6
    assert Tensor([-1.0]).leaky_relu(0.01).item() == pytest.approx(-0.01)


def test_astype_casts_value_and_gradient() -> None:
    x = Tensor(np.array([1.5, -2.25], dtype=np.float64)).requires_grad()
    y = x.astype(np.float32)
    assert y.dtype == np.float32 and y.tolist() == [1.5, -2.25]
    (y * Tensor(np.array([3.0, 4.0], dtype=np.float32))).sum().backward()
    assert x.grad().dtype == np.float64
    np.testing.assert_array_equal(x.grad().data(), [3.0, 4.0])


def test_mixed_dtypes_promote_and_grads_keep_leaf_dtype() -> None:
    a = Tensor(np.array([1.0, 2.0], dtype=np.float32)).requires_grad()
    b = Tensor(np.array([3.0, 4.0], dtype=np.float64)).requires_grad()
    c = a * b
    assert c.dtype == np.float64
    c.sum().backward()
    assert a.grad().dtype == np.float32 and b.grad().dtype == np.float64
    np.testing.assert_array_equal(a.grad().data(), [3.0, 4.0])
    np.testing.assert_array_equal(b.grad().data(), [1.0, 2.0])
