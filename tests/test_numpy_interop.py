"""numpy functions called on tensors (runtime/numpy_interop.py): ufuncs and array functions
dispatch to the aprender op with gradients, or raise; nothing silently drops a gradient."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from gradcheck import check_first_order

import aprender as ap
from aprender.autograd import Tensor
from aprender.errors import GraphError
from aprender.runtime.numpy_interop import HANDLED, UFUNC_METHODS

RNG = np.random.default_rng(0)


def _arrays(*shapes: tuple, lo: float = -2.0, hi: float = 2.0, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [rng.uniform(lo, hi, s) for s in shapes]


def _distinct(*shapes: tuple, seed: int = 0) -> list:
    """Values with no ties (maxima, minima): a shuffled grid plus a little noise."""
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        n = int(np.prod(s))
        out.append((rng.permutation(n).reshape(s) - n / 2) * 0.3 + rng.uniform(0, 0.01, s))
    return out


def _check(fn: Callable, ref: Callable, arrays: list, grads: bool = True,
           rtol: float = 1e-12) -> None:
    """``fn`` on tensors returns a Tensor equal to ``ref`` on the arrays (float64), and its
    gradients equal finite differences."""
    out = fn(*[Tensor(a) for a in arrays])
    expected = np.asarray(ref(*arrays))
    assert isinstance(out, Tensor), type(out)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype)
    np.testing.assert_allclose(out.data(), expected, rtol=rtol, atol=rtol)
    xs = [Tensor(a).requires_grad() for a in arrays]
    if grads:
        assert fn(*xs).requires_grad_enabled()
        check_first_order(fn, arrays)


# --- ufuncs ------------------------------------------------------------------------------------

UNARY = [
    (np.negative, (-2, 2)), (np.exp, (-2, 2)), (np.log, (0.2, 3)), (np.sqrt, (0.2, 3)),
    (np.absolute, (0.2, 2)), (np.abs, (-2, -0.2)), (np.fabs, (0.2, 2)), (np.tanh, (-2, 2)),
]


@pytest.mark.parametrize("ufunc, bounds", UNARY, ids=[u.__name__ for u, _ in UNARY])
def test_unary_ufuncs_dispatch_with_gradients(ufunc, bounds) -> None:
    _check(lambda x: ufunc(x), ufunc, _arrays((3, 4), lo=bounds[0], hi=bounds[1]))


BINARY = [np.add, np.subtract, np.multiply, np.divide, np.true_divide, np.power, np.maximum,
          np.minimum]


@pytest.mark.parametrize("ufunc", BINARY, ids=[u.__name__ for u in BINARY])
def test_binary_ufuncs_dispatch_in_every_operand_order(ufunc) -> None:
    a, b = _distinct((3, 4), (4,), seed=1)
    a, b = np.abs(a) + 0.5, np.abs(b) + 0.5  # positive bases and divisors, no ties
    _check(lambda x, y: ufunc(x, y), ufunc, [a, b])  # tensor, tensor
    _check(lambda x: ufunc(x, b), lambda x: ufunc(x, b), [a])  # tensor, array
    _check(lambda y: ufunc(a, y), lambda y: ufunc(a, y), [b])  # array, tensor
    _check(lambda x: ufunc(x, 1.5), lambda x: ufunc(x, 1.5), [a])  # tensor, Python number
    _check(lambda y: ufunc(1.5, y), lambda y: ufunc(1.5, y), [b])  # Python number, tensor
    _check(lambda y: ufunc(a.tolist(), y), lambda y: ufunc(a, y), [b])  # list, tensor


def test_python_numbers_keep_the_tensor_dtype_like_the_operators() -> None:
    t = Tensor(np.array([1.0, 2.0], dtype=np.float32))
    for out in (np.add(t, 1.5), np.multiply(2.0, t), np.power(t, 2), np.maximum(t, 0.0)):
        assert isinstance(out, Tensor) and out.dtype == np.float32
    assert np.add(t, np.ones(2)).dtype == np.float64  # a float64 array promotes, as numpy


def test_array_operators_with_a_tensor_on_the_right_give_tensors_with_gradients() -> None:
    a, b = _arrays((2, 3), (2, 3), lo=0.5, hi=2.0, seed=2)
    m = _arrays((3, 3), seed=3)[0]
    for fn, ref in [(lambda y: a + y, lambda y: a + y), (lambda y: a - y, lambda y: a - y),
                    (lambda y: a * y, lambda y: a * y), (lambda y: a / y, lambda y: a / y),
                    (lambda y: a ** y, lambda y: a ** y), (lambda y: a @ m.T @ y.T,
                                                             lambda y: a @ m.T @ y.T),
                    (lambda y: np.float64(2.5) * y, lambda y: np.float64(2.5) * y),
                    (lambda y: y + a, lambda y: y + a)]:
        _check(fn, ref, [b])
    for fn in (lambda y: a > y, lambda y: a >= y, lambda y: a < y, lambda y: a <= y,
               lambda y: a == y, lambda y: a != y):
        _check(fn, fn, [b], grads=False)
    t = Tensor(b).requires_grad()
    s = a + t
    assert isinstance(s, Tensor) and s.requires_grad_enabled()
    (a * t).sum().backward()
    np.testing.assert_array_equal(t.grad().data(), a)


def test_comparison_ufuncs_give_bool_tensors() -> None:
    a, b = _distinct((3,), (3,), seed=4)
    for ufunc in (np.greater, np.greater_equal, np.less, np.less_equal, np.equal,
                  np.not_equal):
        out = ufunc(Tensor(a).requires_grad(), b)
        assert isinstance(out, Tensor) and out.dtype == np.bool_
        np.testing.assert_array_equal(out.data(), ufunc(a, b))


def test_matmul_ufunc_dispatches() -> None:
    a, b = _arrays((2, 3, 4), (4, 5), seed=5)
    _check(lambda x, y: np.matmul(x, y), np.matmul, [a, b])
    _check(lambda y: np.matmul(a, y), lambda y: np.matmul(a, y), [b])


def test_every_mapped_ufunc_runs_its_tensor_method_and_matches_numpy() -> None:
    """Every ufunc in UFUNC_METHODS names a Tensor method, and gives numpy's values through it,
    with gradients where the op has one."""
    for name, method in UFUNC_METHODS.items():
        ufunc = getattr(np, name)
        assert isinstance(ufunc, np.ufunc) and callable(getattr(Tensor, method, None)), name
        if name == "matmul":
            continue  # test_matmul_ufunc_dispatches
        arrays = _arrays(*[(2, 3)] * ufunc.nin, lo=0.15, hi=0.45, seed=6)  # domains, no integers
        out = ufunc(*[Tensor(a) for a in arrays])
        expected = ufunc(*arrays)
        assert isinstance(out, Tensor), name
        assert out.dtype == expected.dtype, (name, out.dtype, expected.dtype)
        np.testing.assert_allclose(out.data(), expected, rtol=1e-12, atol=1e-14, err_msg=name)
        if expected.dtype.kind == "f":
            check_first_order(lambda *xs, u=ufunc: u(*xs), arrays)


def test_ufunc_outer_and_reduce_map_to_ops() -> None:
    a, b = _distinct((3,), (4,), seed=7)
    _check(lambda x, y: np.multiply.outer(x, y), np.multiply.outer, [a, b])
    _check(lambda x, y: np.subtract.outer(x, y), np.subtract.outer, [a, b])
    (m,) = _distinct((3, 4, 2), seed=8)
    _check(lambda x: np.add.reduce(x), np.add.reduce, [m])  # numpy's default axis 0
    _check(lambda x: np.add.reduce(x, axis=(0, 2), keepdims=True),
           lambda x: np.add.reduce(x, axis=(0, 2), keepdims=True), [m])
    _check(lambda x: np.add.reduce(x, 1), lambda x: np.add.reduce(x, 1), [m])
    _check(lambda x: np.maximum.reduce(x, axis=None), lambda x: np.maximum.reduce(x, None), [m])
    _check(lambda x: np.minimum.reduce(x, axis=-1), lambda x: np.minimum.reduce(x, -1), [m])
    _check(lambda x: np.multiply.reduce(x, axis=1), lambda x: np.multiply.reduce(x, 1), [m])
    _check(lambda x: np.add.accumulate(x, axis=1), lambda x: np.add.accumulate(x, 1), [m])
    _check(lambda x: np.logical_and.reduce(x > 0, axis=0),
           lambda x: np.logical_and.reduce(x > 0, axis=0), [m], grads=False)


@pytest.mark.parametrize("call, match", [
    (lambda t: np.add(t, 1.0, out=np.empty(3)), r"numpy\.add: out="),
    (lambda t: np.exp(t, out=np.empty(3)), r"numpy\.exp: out="),
    (lambda t: np.multiply(t, 2.0, where=np.array([True, False, True])),
     r"numpy\.multiply: where="),
    (lambda t: np.add(t, 1.0, dtype=np.float32), r"numpy\.add: dtype=.*astype"),
    (lambda t: np.add.at(t, [0], 1.0), r"numpy\.add\.at: .*in place"),
    (lambda t: np.add.reduceat(t, [0, 2]), r"numpy\.add\.reduceat"),
    (lambda t: np.subtract.reduce(t), r"numpy\.subtract\.reduce"),
    (lambda t: np.subtract.accumulate(t), r"numpy\.subtract\.accumulate"),
    (lambda t: np.add.reduce(t, initial=1.0), r"numpy\.add\.reduce: initial="),
    (lambda t: np.matmul(t, t, axes=[(0,), (0,), ()]), r"numpy\.matmul: axes="),
])
@pytest.mark.parametrize("rg", [True, False])
def test_ufunc_arguments_a_tensor_cannot_honour_raise(call, match, rg) -> None:
    t = Tensor(np.array([1.0, 2.0, 3.0])).requires_grad(rg)
    with pytest.raises(TypeError, match=match):
        call(t)


def test_in_place_operator_on_an_array_with_a_tensor_raises() -> None:
    arr = np.zeros(3)
    with pytest.raises(TypeError, match=r"array \+= tensor"):
        arr += Tensor(np.ones(3)).requires_grad()
    np.testing.assert_array_equal(arr, 0.0)


@pytest.mark.parametrize("ufunc", [np.tan, np.log1p, np.arctan2, np.hypot, np.isfinite,
                                   np.logical_and, np.logical_not, np.remainder],
                         ids=lambda u: u.__name__)
def test_ufuncs_without_a_tensor_method_follow_rule_3(ufunc) -> None:
    """Ufuncs not in UFUNC_METHODS (no Tensor method of that name) are not differentiable in
    aprender: refused when an operand requires grad, numpy on the values otherwise."""
    assert ufunc.__name__ not in UFUNC_METHODS
    arrays = _arrays(*[(3,)] * ufunc.nin, lo=0.2, hi=0.8, seed=9)
    with pytest.raises(TypeError, match=rf"numpy\.{ufunc.__name__} is not differentiable in "
                                        r"aprender.*requires grad.*no Tensor method"):
        ufunc(Tensor(arrays[0]).requires_grad(), *arrays[1:])
    if ufunc.nin == 2:
        with pytest.raises(TypeError, match="not differentiable"):
            ufunc(arrays[0], Tensor(arrays[1]).requires_grad())  # a tensor on the right
    out = ufunc(*[Tensor(a) for a in arrays])
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, ufunc(*arrays))


def test_ufunc_without_an_op_raises_for_grad_and_computes_values_otherwise() -> None:
    # cbrt has no aprender op (nor a name in UFUNC_METHODS): rule 3
    x = np.array([1.0, 8.0, 27.0])
    with pytest.raises(TypeError, match=r"numpy\.cbrt is not differentiable in aprender.*"
                                        r"requires grad.*\.data\(\)"):
        np.cbrt(Tensor(x).requires_grad())
    with pytest.raises(TypeError, match="numpy.cbrt is not differentiable"):
        np.cbrt(Tensor(x).requires_grad() * 2.0)  # an op's result requires grad too
    out = np.cbrt(Tensor(x))
    assert type(out) is np.ndarray
    np.testing.assert_allclose(out, [1.0, 2.0, 3.0])
    with ap.no_grad():  # a result computed without gradients converts like any plain tensor
        np.testing.assert_allclose(np.cbrt(Tensor(x).requires_grad() * 1.0), [1.0, 2.0, 3.0])


# --- array functions ---------------------------------------------------------------------------

A3 = _distinct((2, 3, 4), seed=10)[0]
B3 = _distinct((2, 3, 4), seed=11)[0]

FUNCTIONS = [
    ("sum", lambda x: np.sum(x), [A3]),
    ("sum_axis", lambda x: np.sum(x, axis=1), [A3]),
    ("sum_axes_keepdims", lambda x: np.sum(x, axis=(0, -1), keepdims=True), [A3]),
    ("sum_positional_axis", lambda x: np.sum(x, 2), [A3]),
    ("sum_dtype", lambda x: np.sum(x, axis=0, dtype=np.float64), [A3]),
    ("sum_empty_axes", lambda x: np.sum(x, axis=()), [A3]),
    ("mean", lambda x: np.mean(x), [A3]),
    ("mean_axis_keepdims", lambda x: np.mean(x, axis=(1, 2), keepdims=True), [A3]),
    ("max", lambda x: np.max(x), [A3]),
    ("max_axis", lambda x: np.max(x, axis=1), [A3]),
    ("amax_axes", lambda x: np.amax(x, axis=(0, 2), keepdims=True), [A3]),
    ("min", lambda x: np.min(x), [A3]),
    ("amin_axis", lambda x: np.amin(x, axis=-1), [A3]),
    ("min_axes_keepdims", lambda x: np.min(x, axis=(0, 1), keepdims=True), [A3]),
    ("var", lambda x: np.var(x), [A3]),
    ("var_axis_ddof", lambda x: np.var(x, axis=1, ddof=1), [A3]),
    ("std_axes_keepdims", lambda x: np.std(x, axis=(0, 2), keepdims=True), [A3]),
    ("std_correction", lambda x: np.std(x, axis=0, correction=1), [A3]),
    ("dot_2d", lambda x, y: np.dot(x, y), _arrays((3, 4), (4, 2), seed=12)),
    ("dot_1d", lambda x, y: np.dot(x, y), _arrays((4,), (4,), seed=13)),
    ("dot_nd_1d", lambda x, y: np.dot(x, y), _arrays((2, 3, 4), (4,), seed=14)),
    ("dot_nd_2d", lambda x, y: np.dot(x, y), _arrays((2, 3, 4), (4, 5), seed=15)),
    ("dot_scalar", lambda x, y: np.dot(x, y), _arrays((), (3,), seed=16)),
    ("inner", lambda x, y: np.inner(x, y), _arrays((3, 4), (2, 4), seed=17)),
    ("inner_1d", lambda x, y: np.inner(x, y), _arrays((4,), (4,), seed=18)),
    ("outer", lambda x, y: np.outer(x, y), _arrays((3,), (2, 2), seed=19)),
    ("transpose", lambda x: np.transpose(x), [A3]),
    ("transpose_axes", lambda x: np.transpose(x, (1, -1, 0)), [A3]),
    ("swapaxes", lambda x: np.swapaxes(x, 0, 2), [A3]),
    ("moveaxis", lambda x: np.moveaxis(x, 0, -1), [A3]),
    ("moveaxis_many", lambda x: np.moveaxis(x, [0, 1], [2, 0]), [A3]),
    ("reshape", lambda x: np.reshape(x, (4, -1)), [A3]),
    ("reshape_int", lambda x: np.reshape(x, -1), [A3]),
    ("ravel", lambda x: np.ravel(x), [A3]),
    ("squeeze", lambda x: np.squeeze(x), _arrays((1, 3, 1, 2), seed=20)),
    ("squeeze_axis", lambda x: np.squeeze(x, axis=2), _arrays((1, 3, 1, 2), seed=20)),
    ("expand_dims", lambda x: np.expand_dims(x, (0, -1)), _arrays((3, 2), seed=21)),
    ("broadcast_to", lambda x: np.broadcast_to(x, (2, 3, 4)), _arrays((3, 1), seed=22)),
    ("concatenate", lambda x, y: np.concatenate([x, y], axis=1), [A3, B3]),
    ("concatenate_none", lambda x, y: np.concatenate((x, y), axis=None), [A3, B3]),
    ("concatenate_neg", lambda x, y: np.concatenate([y, x], -1), [A3, B3]),
    ("stack", lambda x, y: np.stack([x, y]), [A3, B3]),
    ("stack_axis", lambda x, y: np.stack([x, y], axis=-1), [A3, B3]),
    ("hstack", lambda x, y: np.hstack([x, y]), [A3, B3]),
    ("hstack_1d", lambda x, y: np.hstack([x, y]), _arrays((3,), (2,), seed=23)),
    ("vstack", lambda x, y: np.vstack([x, y]), _arrays((3,), (2, 3), seed=24)),
    ("split", lambda x: np.split(x, 3, axis=1)[1], [A3]),
    ("split_indices", lambda x: np.split(x, [1, 3], axis=2)[2], [A3]),
    ("array_split", lambda x: np.array_split(x, 3, axis=2)[0], [A3]),
    ("flip", lambda x: np.flip(x), [A3]),
    ("flip_axis", lambda x: np.flip(x, axis=1), [A3]),
    ("where", lambda x, y: np.where(A3 > 0, x, y), [A3, B3]),
    ("where_scalar", lambda x: np.where(x > 0, x, 0.0), [A3]),
    ("where_float_condition", lambda x, y: np.where(A3 - A3.min(), x, y), [A3, B3]),
    ("clip", lambda x: np.clip(x, -1.0, 1.0), [A3]),
    ("clip_one_side", lambda x: np.clip(x, None, 0.5), [A3]),
    ("clip_keywords", lambda x: np.clip(x, min=-0.5, max=2.0), [A3]),
    ("clip_arrays", lambda x: np.clip(x, B3 - 1.0, B3 + 1.0), [A3]),
    ("clip_tensor_bounds", lambda x, y: np.clip(x, y, 3.0), [A3, B3]),
]


@pytest.mark.parametrize("fn, arrays", [(f, a) for _, f, a in FUNCTIONS],
                         ids=[name for name, _, _ in FUNCTIONS])
def test_array_functions_dispatch_with_numpy_semantics_and_gradients(fn, arrays) -> None:
    _check(fn, fn, arrays, rtol=1e-11)


def test_array_functions_keep_the_graph_and_return_tensors() -> None:
    x = Tensor(A3).requires_grad()
    for out in (np.sum(x), np.mean(x, axis=0), np.max(x, axis=1), np.transpose(x),
                np.concatenate([A3, x]), np.stack([x, B3]), np.where(A3 > 0, B3, x),
                np.clip(x, 0.0, 1.0), np.squeeze(x[:1]), np.expand_dims(x, 0)):
        assert isinstance(out, Tensor) and out.requires_grad_enabled()
    pieces = np.split(x, 2)
    assert all(isinstance(p, Tensor) and p.requires_grad_enabled() for p in pieces)


def test_functions_of_newer_ops_dispatch() -> None:
    """Functions run by the Tensor methods added with the shape and reduction ops."""
    (m,) = _distinct((3, 4), seed=30)
    pos = np.abs(m) + 0.5
    cases = [
        ("prod", lambda x: np.prod(x, axis=1), [pos], True),
        ("prod", lambda x: np.prod(x), [pos], True),
        ("cumsum", lambda x: np.cumsum(x, axis=1), [m], True),
        ("cumsum", lambda x: np.cumsum(x), [m], True),
        ("argmax", lambda x: np.argmax(x, axis=1), [m], False),
        ("argmax", lambda x: np.argmax(x), [m], False),
        ("argmin", lambda x: np.argmin(x, axis=0, keepdims=True), [m], False),
        ("tril", lambda x: np.tril(x, -1), [m], True),
        ("triu", lambda x: np.triu(x), [m], True),
        ("roll", lambda x: np.roll(x, 2, axis=1), [m], True),
        ("round", lambda x: np.round(x), [m], False),
        ("round", lambda x: np.round(x, 2), [m], False),
        ("round", lambda x: np.around(x * 10.0, -1), [m], False),
        ("repeat", lambda x: np.tile(x, 2), [m], True),
        ("repeat", lambda x: np.tile(x, (2, 1, 3)), [m], True),
        ("var", lambda x: np.var(x, axis=(0, 1), ddof=2), [m], True),
        ("flip", lambda x: np.flip(x, (0, 1)), [m], True),
        ("any", lambda x: np.any(x > 1.0, axis=0), [m], False),
        ("all", lambda x: np.all(x > -5.0), [m], False),
    ]
    for _, fn, arrays, grads in cases:
        _check(fn, fn, arrays, grads=grads)


@pytest.mark.parametrize("func", [np.sum, np.mean, np.max, np.min, np.prod])
def test_reducing_over_no_axis_gives_a_new_tensor_with_the_gradient(func) -> None:
    x = Tensor(A3).requires_grad()
    out = func(x, axis=())
    assert isinstance(out, Tensor) and out is not x and out.requires_grad_enabled()
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out.data(), func(A3, axis=()))
    (out * B3).sum().backward()
    np.testing.assert_array_equal(x.grad().data(), B3)


@pytest.mark.parametrize("split, args", [
    (np.split, (2,)), (np.split, (4, 2)), (np.split, ([1, 3], 2)), (np.split, ([-1], 1)),
    (np.split, ([3, 1], 2)), (np.split, ([0, 9], 2)), (np.split, (1, -1)),
    (np.array_split, (3, 2)), (np.array_split, (5, 1)), (np.array_split, ([2], -1)),
], ids=lambda v: getattr(v, "__name__", repr(v)))
def test_split_pieces_equal_numpy_with_gradients(split, args) -> None:
    """Section counts (equal for np.split, the first pieces longer for np.array_split) and
    index lists with numpy's slice bounds (negative, past the end, decreasing)."""
    expected = split(A3, *args)
    pieces = split(Tensor(A3), *args)
    assert isinstance(pieces, list) and len(pieces) == len(expected)
    for piece, want in zip(pieces, expected, strict=True):
        assert isinstance(piece, Tensor) and piece.shape == want.shape
        np.testing.assert_array_equal(piece.data(), want)
    check_first_order(lambda x: ap.concat([p.reshape(-1) for p in split(x, *args)]), [A3])


def test_split_refuses_what_numpy_refuses() -> None:
    t = Tensor(A3)
    with pytest.raises(ValueError, match="equal division"):
        np.split(t, 5, axis=2)
    with pytest.raises(ValueError, match="larger than 0"):
        np.array_split(t, 0)
    assert [p.shape for p in np.split(Tensor(np.zeros((0, 2))), 3)] == [(0, 2)] * 3


def test_one_argument_where_follows_rule_3() -> None:
    x = np.array([0.0, 1.5, 0.0, 2.0])
    with pytest.raises(TypeError, match=r"numpy\.where is not differentiable in aprender.*"
                                        r"no Tensor method nonzero"):
        np.where(Tensor(x).requires_grad())
    out = np.where(Tensor(x))
    assert isinstance(out, tuple) and type(out[0]) is np.ndarray
    np.testing.assert_array_equal(out[0], [1, 3])


def test_einsum_dispatches_to_ap_einsum() -> None:
    a, b = _arrays((2, 3), (3, 4), seed=31)
    c, d = _arrays((2, 3, 4), (2, 4, 5), seed=32)
    _check(lambda x, y: np.einsum("ij,jk->ik", x, y), lambda x, y: a @ b, [a, b])
    _check(lambda y: np.einsum("ij,jk", a, y), lambda y: a @ y, [b])  # implicit output
    _check(lambda x, y: np.einsum("bij,bjk->bik", x, y), np.matmul, [c, d])
    _check(lambda x: np.einsum("ij->j", x), lambda x: x.sum(0), [a])
    with pytest.raises(TypeError, match=r"numpy\.einsum: the sublist form.*subscripts"):
        np.einsum(Tensor(a), [0, 1], Tensor(b), [1, 2])


@pytest.mark.parametrize("call, match", [
    (lambda t: np.sum(t, out=np.empty(())), r"numpy\.sum: out="),
    (lambda t: np.sum(t, where=np.ones(3, bool)), r"numpy\.sum: where="),
    (lambda t: np.max(t, initial=0.0), r"numpy\.max: initial="),
    (lambda t: np.mean(t, out=np.empty(())), r"numpy\.mean: out="),
    (lambda t: np.reshape(t, (3, 1), order="F"), r"numpy\.reshape: order='F'"),
    (lambda t: np.concatenate([t, t], out=np.empty(6)), r"numpy\.concatenate: out="),
    (lambda t: np.dot(t, np.ones((2, 3, 2))), r"numpy\.dot: a 3-d second operand.*matmul"),
    (lambda t: np.clip(t, 0, 1, out=np.empty(3)), r"numpy\.clip: out="),
])
def test_array_function_arguments_a_tensor_cannot_honour_raise(call, match) -> None:
    with pytest.raises(TypeError, match=match):
        call(Tensor(np.array([1.0, 2.0, 3.0])).requires_grad())


@pytest.mark.parametrize("call", [
    lambda t: np.linalg.norm(t), lambda t: np.sort(t), lambda t: np.cumprod(t),
    lambda t: np.copy(t), lambda t: np.diff(t),
    lambda t: np.allclose(t, 1.0), lambda t: np.median(t), lambda t: np.pad(t, 1),
])
def test_other_functions_refuse_tensors_that_require_grad_and_run_on_plain_values(call) -> None:
    x = np.array([3.0, 1.0, 2.0])
    with pytest.raises(TypeError, match=r"numpy\.\S+ is not differentiable in aprender.*"
                                        r"requires grad.*call \.data\(\)"):
        call(Tensor(x).requires_grad())
    out = call(Tensor(x))
    assert not isinstance(out, Tensor)
    np.testing.assert_array_equal(out, call(x))


def test_refusal_suggests_an_alternative_where_one_exists() -> None:
    with pytest.raises(TypeError, match=r"\(t \* t\)\.sum\(\)\.sqrt\(\)"):
        np.linalg.norm(Tensor(np.ones(3)).requires_grad())


def test_metadata_functions_and_new_tensors() -> None:
    x = Tensor(np.ones((2, 3), np.float32)).requires_grad()
    assert np.shape(x) == (2, 3) and np.ndim(x) == 2 and np.size(x) == 6
    assert np.size(x, 1) == 3
    assert np.result_type(x, np.float64) == np.float64
    assert np.result_type(x, 1.0) == np.float32
    for fn, value in ((np.zeros_like, 0.0), (np.ones_like, 1.0), (np.empty_like, 0.0),
                      (lambda t: np.full_like(t, 7.0), 7.0)):
        out = fn(x)
        assert isinstance(out, Tensor) and not out.requires_grad_enabled()
        assert out.shape == (2, 3) and out.dtype == np.float32
        np.testing.assert_array_equal(out.data(), value)
    assert np.zeros_like(x, dtype=np.int64, shape=(4,)).dtype == np.int64


# --- converting to arrays ----------------------------------------------------------------------

@pytest.mark.parametrize("convert", [
    lambda t: np.asarray(t), lambda t: np.array(t), lambda t: np.array([t]),
    lambda t: np.array([t, t]), lambda t: np.r_[t], lambda t: np.r_[t, t],
    lambda t: np.c_[t], lambda t: np.asarray(t, dtype=np.float32),
    lambda t: np.asanyarray(t), lambda t: np.array([1.0, t[0]]),
])
def test_converting_a_tensor_that_requires_grad_raises_like_pytorch(convert) -> None:
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    with pytest.raises(TypeError, match=r"can't convert float64\[2?\], a tensor that requires "
                                        r"grad.*t\.data\(\) \(or t\.detach\(\)\)"):
        convert(x)
    with pytest.raises(TypeError, match="requires grad"):
        convert(x * 2.0)  # computed from it: part of the graph
    with ap.no_grad(), pytest.raises(TypeError, match="requires grad"):
        np.asarray(x)  # the leaf still requires grad (PyTorch raises too)


def test_a_tensor_built_from_a_list_of_tensors_that_require_grad_raises() -> None:
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    with pytest.raises(TypeError, match=r"requires grad.*ap\.stack"):
        Tensor([x, x])
    np.testing.assert_array_equal(ap.stack([x, x]).data(), [[1.0, 2.0], [1.0, 2.0]])


def test_conversion_error_points_at_the_user_line() -> None:
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    with pytest.raises(TypeError, match=r"test_numpy_interop\.py:\d+: np\.r_\[x\]"):
        np.r_[x]


def test_plain_tensors_convert_as_before_and_values_stay_reachable() -> None:
    x = Tensor(np.array([1.0, 2.0]))
    assert type(np.asarray(x)) is np.ndarray
    np.testing.assert_array_equal(np.array([x, x]), [[1.0, 2.0], [1.0, 2.0]])
    np.testing.assert_array_equal(np.r_[x, x], [1.0, 2.0, 1.0, 2.0])
    w = Tensor(np.array([1.0, 2.0])).requires_grad()
    np.testing.assert_array_equal(w.data(), [1.0, 2.0])
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(w.detach()), [1.0, 2.0])
    with ap.no_grad():
        np.testing.assert_array_equal(np.asarray(w * 2.0), [2.0, 4.0])
    assert float(w.sum()) == 3.0


# --- compiled ----------------------------------------------------------------------------------

def test_compiled_numpy_calls_record_ops_and_equal_eager() -> None:
    weights = Tensor(np.random.default_rng(40).uniform(0.5, 1.5, (4,)))
    bias = np.linspace(-1.0, 1.0, 4)

    def step(x: Tensor, y: Tensor) -> Tensor:
        h = np.exp(x) + bias  # ufunc, then array on the right
        z = np.sum(h, axis=0) + np.mean(np.maximum(y, 0.0), axis=0)
        z = np.concatenate([z[:2], np.tanh(z[2:])]) * (bias - np.sqrt(np.abs(y[0]) + 1.0))
        out = np.max(np.stack([z, -z]), axis=0) + np.where(bias > 0, z, 2.0 * z)
        (out * weights).sum().backward()
        return out

    fast = ap.compile(step)
    for seed in (0, 1):
        xa, ya = _arrays((3, 4), (3, 4), seed=41 + seed)
        results = []
        for run in (step, fast):
            x, y = Tensor(xa).requires_grad(), Tensor(ya).requires_grad()
            out = run(x, y)
            results.append((out.data().copy(), x.grad().data(), y.grad().data()))
        for eager, compiled in zip(*results, strict=True):
            np.testing.assert_allclose(compiled, eager, rtol=1e-12, atol=1e-12)
    ir = fast.ir()
    assert "exp" in ir and "sum" in ir and "maximum" in ir and "concat" in ir
    assert fast.cache_info()["compiles"] == 1


def test_compiled_functions_refuse_numpy_reading_values() -> None:
    x = np.array([1.0, 2.0])
    for body in (lambda t: Tensor(np.linalg.norm(t)), lambda t: Tensor(np.asarray(t)),
                 lambda t: Tensor(np.cbrt(t))):
        fast = ap.compile(lambda a, body=body: body(Tensor(a) * 2.0))
        with pytest.raises(GraphError, match="inside a compiled function"):
            fast(x)


def test_handled_functions_are_numpy_public_functions() -> None:
    for func in HANDLED:
        module = np if func.__module__ == "numpy" else None
        assert module is not None and getattr(np, func.__name__) is func, func
