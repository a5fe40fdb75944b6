"""Eager autograd semantics that follow PyTorch, and input validation (issue 10).

Expected values are derived by hand (the gradients of these small expressions are simple) and
agree with what PyTorch 2.x does for the same programs; PyTorch's behaviour is stated beside
each test.
"""

from __future__ import annotations

import sys
import threading
import tracemalloc

import numpy as np
import pytest

import aprender as ap
from aprender.autograd import Tensor, no_grad
from aprender.optim import clip_grad_norm_
from aprender.runtime.tensor import set_grad

# --- gradient accumulation -------------------------------------------------------------------


def test_threads_backward_on_a_shared_leaf_lose_no_update() -> None:
    """8 threads x 1000 backward() into one leaf: every gradient lands (PyTorch: exact)."""
    w = Tensor(np.zeros(3)).requires_grad()
    threads_n, calls = 8, 1000
    start = threading.Barrier(threads_n)

    def work() -> None:
        start.wait()
        for _ in range(calls):
            (w * 2.0).sum().backward()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show at once
    try:
        threads = [threading.Thread(target=work) for _ in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    np.testing.assert_array_equal(w.grad().data(), np.full(3, 2.0 * threads_n * calls))


def test_held_grad_sees_later_accumulation() -> None:
    """PyTorch: ``g = x.grad`` then another backward(): ``g`` is ``x.grad`` and holds the sum."""
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    (x * 3.0).sum().backward()
    g = x.grad()
    (x * x).sum().backward()
    assert x.grad() is g
    np.testing.assert_array_equal(g.data(), [3.0 + 2.0, 3.0 + 4.0])


def test_accumulation_never_writes_into_a_gradient_it_does_not_own() -> None:
    """A gradient set from outside (shared with another leaf, or a read-only broadcast view) is
    replaced by a new array, never written into."""
    a = Tensor(np.array([1.0, 2.0])).requires_grad()
    b = Tensor(np.array([5.0, 6.0])).requires_grad()
    (a * 1.0).sum().backward()
    shared = a.grad()
    set_grad(b, shared)
    (b * 2.0).sum().backward()
    np.testing.assert_array_equal(shared.data(), [1.0, 1.0])  # a's gradient is untouched
    np.testing.assert_array_equal(b.grad().data(), [3.0, 3.0])
    assert a.grad() is shared
    view = np.broadcast_to(np.array(1.0), (2,))  # read-only
    c = Tensor(np.array([0.0, 0.0])).requires_grad()
    set_grad(c, Tensor._as_input(view))
    (c * 4.0).sum().backward()
    np.testing.assert_array_equal(c.grad().data(), [5.0, 5.0])
    np.testing.assert_array_equal(view, [1.0, 1.0])
    # owned from then on: the next backward adds in place
    g = c.grad()
    (c * 1.0).sum().backward()
    assert c.grad() is g
    np.testing.assert_array_equal(g.data(), [6.0, 6.0])


def test_in_place_accumulation_bumps_the_gradient_version() -> None:
    """The gradient changes in place, so a graph that saved it notices (PyTorch: same)."""
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    (x * 1.0).sum().backward()
    g = x.grad()
    g.requires_grad()
    z = (g * g).sum()
    (x * 1.0).sum().backward()
    with pytest.raises(ap.GraphError, match="mul needs input 0"):
        z.backward()


# --- requires_grad() after the forward ---------------------------------------------------------


def test_leaf_marked_after_the_forward_gets_no_gradient_on_any_path() -> None:
    """PyTorch: an op records only the inputs that required grad when it ran."""
    w = Tensor(np.array([2.0, 3.0])).requires_grad()
    x = Tensor(np.array([1.0, 1.0]))
    y = (x * w).sum()
    x.requires_grad()
    y.backward()
    assert x.grad() is None
    np.testing.assert_array_equal(w.grad().data(), [1.0, 1.0])
    x2 = Tensor(np.array([1.0, 1.0]))
    y2 = (x2 * 2.0 * w).sum()
    x2.requires_grad()
    y2.backward()
    assert x2.grad() is None
    # used again after the mark: that use does give it a gradient
    (x * w).sum().backward()
    np.testing.assert_array_equal(x.grad().data(), [2.0, 3.0])


def test_leaf_unmarked_after_the_forward_gets_no_gradient() -> None:
    """PyTorch: ``x.requires_grad_(False)`` before backward(): ``x.grad`` stays None."""
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    w = Tensor(np.array([3.0, 4.0])).requires_grad()
    y = (x * w).sum()
    x.requires_grad(False)
    y.backward()
    assert x.grad() is None
    np.testing.assert_array_equal(w.grad().data(), [1.0, 2.0])


def test_functional_grad_of_a_leaf_marked_late_is_none() -> None:
    w = Tensor(np.array([2.0])).requires_grad()
    x = Tensor(np.array([5.0]))
    y = (x * w).sum()
    x.requires_grad()
    gx, gw = ap.grad(y, [x, w])
    assert gx is None
    np.testing.assert_array_equal(gw.data(), [5.0])


# --- create_graph=True -------------------------------------------------------------------------


def test_create_graph_gives_each_leaf_its_own_gradient() -> None:
    """PyTorch: ``a.grad is b.grad`` is False; clip_grad_norm_ scales each once."""
    a = Tensor(np.ones(3)).requires_grad()
    b = Tensor(np.ones(3)).requires_grad()
    (a + b).sum().backward(create_graph=True)
    assert a.grad() is not b.grad()
    norm = clip_grad_norm_([a, b], 1.0)
    np.testing.assert_allclose(norm.item(), np.sqrt(6.0), rtol=1e-15)
    coef = 1.0 / (np.sqrt(6.0) + 1e-6)
    np.testing.assert_allclose(a.grad().data(), np.full(3, coef), rtol=1e-12)
    np.testing.assert_allclose(b.grad().data(), np.full(3, coef), rtol=1e-12)


def test_create_graph_does_not_make_the_seed_the_gradient() -> None:
    """PyTorch: ``a.backward(s, create_graph=True)``: ``a.grad is s`` is False."""
    a = Tensor(np.ones(3)).requires_grad()
    seed = Tensor(np.array([1.0, 2.0, 3.0]))
    a.backward(seed, create_graph=True)
    assert a.grad() is not seed
    seed.assign(np.zeros(3))
    np.testing.assert_array_equal(a.grad().data(), [1.0, 2.0, 3.0])
    b = Tensor(np.ones(3)).requires_grad()
    (b + 0.0).backward(seed, create_graph=True)  # add's VJP passes the seed through
    assert b.grad() is not seed


def test_create_graph_gradients_that_depend_on_leaves_stay_separate_and_differentiable() -> None:
    """``s = a + b; loss = (s * s).sum()``: d/da = d/db = 2 s (one tensor that add's VJP hands
    to both), two objects, each differentiable: d(sum(grad_a))/da = 2 per element."""
    a = Tensor(np.array([1.0, 2.0])).requires_grad()
    b = Tensor(np.array([0.5, 0.5])).requires_grad()
    s = a + b
    (s * s).sum().backward(create_graph=True)
    ga, gb = a.grad(), b.grad()
    assert ga is not gb
    np.testing.assert_array_equal(ga.data(), [3.0, 5.0])
    np.testing.assert_array_equal(gb.data(), [3.0, 5.0])
    (d,) = ap.grad(ga.sum(), [a])
    np.testing.assert_array_equal(d.data(), [2.0, 2.0])


def test_held_grad_from_create_graph_sees_later_plain_accumulation() -> None:
    """PyTorch: after backward(create_graph=True), a plain backward() adds into ``.grad``."""
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    (x * 2.0).sum().backward(create_graph=True)
    g = x.grad()
    (x * 2.0).sum().backward()
    assert x.grad() is g
    np.testing.assert_array_equal(g.data(), [4.0, 4.0])


# --- the seed's dtype ---------------------------------------------------------------------------


def test_seed_is_cast_to_the_roots_dtype() -> None:
    """PyTorch casts ``grad`` to the root's dtype before propagating: float64 gradients of a
    float64 leaf computed in float64 from the (float32) seed values."""
    seed32 = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    a = Tensor(np.array([1.0, 2.0, 3.0])).requires_grad()
    a.backward(Tensor(seed32))
    assert a.grad().dtype == np.float64
    np.testing.assert_array_equal(a.grad().data(), seed32.astype(np.float64))
    y = a * 1.0
    (gy,) = ap.grad(y, [y], Tensor(seed32))
    assert gy.dtype == np.float64
    # mean: the gradient seed / n is computed in float64
    m = Tensor(np.array([1.0, 2.0, 3.0, 4.0, 5.0])).requires_grad()
    s = np.float32(0.1)
    m.mean().backward(Tensor(np.array(s)))
    np.testing.assert_array_equal(m.grad().data(), np.full(5, np.float64(s) / 5.0))


def test_seed_of_other_kinds_is_refused() -> None:
    a = Tensor(np.ones(2)).requires_grad()
    with pytest.raises(ap.DTypeError, match="grad complex128"):
        (a * 1.0).backward(Tensor(np.ones(2, dtype=np.complex128)))


# --- version checks ----------------------------------------------------------------------------


def test_multiplying_by_a_scalar_does_not_save_the_tensor() -> None:
    """PyTorch: ``y = x * 2.0``; ``x`` changed in place; ``y.backward()`` runs (grad 2)."""
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    y = x * 2.0
    with no_grad():
        x.add_(1.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad().data(), [2.0, 2.0])


def test_only_what_a_needed_gradient_reads_is_checked() -> None:
    """PyTorch saves ``other`` of ``self * other`` only if ``self`` needs a gradient, and so on:
    changing an operand the gradient does not read is fine, changing one it reads raises."""
    h = np.array([[2.0, 3.0], [4.0, 5.0]])
    for name, fn, expected in [
        ("mul", lambda x, c: x * c, h),
        ("div", lambda x, c: x / c, 1.0 / h),
        ("matmul", lambda x, c: x @ c, np.broadcast_to(h.sum(axis=1), (2, 2))),
    ]:
        x = Tensor(np.ones((2, 2))).requires_grad()
        c = Tensor(h)
        y = fn(x, c)
        with no_grad():
            x.add_(1.0)  # the gradient of x does not read x
        y.sum().backward()
        np.testing.assert_allclose(x.grad().data(), expected, rtol=1e-15, err_msg=name)
        x = Tensor(np.ones((2, 2))).requires_grad()
        y = fn(x, c)
        with no_grad():
            c.add_(1.0)  # ... but it reads c
        with pytest.raises(ap.GraphError, match=f"{name} needs input 1 as it was"):
            y.sum().backward()
        c = Tensor(h)


def test_changed_output_is_named_as_the_output() -> None:
    """``y = x.exp(); y.detach().add_(1)``: exp saved its output, and the message says so
    (PyTorch: "which is output 0 of Exp")."""
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    y = x.exp()
    y.detach().add_(1.0)
    with pytest.raises(ap.GraphError, match=r"exp needs its output as it was when recorded, but "
                                            r"it \(float64\[2\]\) was changed in place"):
        y.sum().backward()


# --- ap.grad ------------------------------------------------------------------------------------


def test_functional_grad_for_an_input_that_does_not_require_grad_raises() -> None:
    """PyTorch: "One of the differentiated Tensors does not require grad"."""
    x = Tensor(np.ones(3))
    w = Tensor(np.ones(3)).requires_grad()
    y = (x * w).sum()
    with pytest.raises(ap.GraphError, match=r"grad: input 0 \(float64\[3\]\) does not require "
                                            r"grad"):
        ap.grad(y, [x])
    with pytest.raises(ap.GraphError, match="input 1"):
        ap.grad(y, [w, x])
    (gw,) = ap.grad(y, [w])
    np.testing.assert_array_equal(gw.data(), [1.0, 1.0, 1.0])


# --- dtypes Tensor() and gradients refuse ------------------------------------------------------


def test_complex_operand_with_a_float_tensor_that_requires_grad_raises() -> None:
    x = Tensor(np.ones(3)).requires_grad()
    c = Tensor(np.full(3, 1j))
    with pytest.raises(ap.DTypeError, match=r"mul: gradients through complex numbers are not "
                                            r"supported.*float64\[3\], complex128\[3\]"):
        x * c
    with pytest.raises(ap.DTypeError, match="complex"):
        c * x
    with pytest.raises(ap.DTypeError, match="complex"):
        x.astype(np.complex64)


def test_complex_tensors_without_grad_still_compute() -> None:
    c = Tensor(np.array([1j, 2.0]))
    x = Tensor(np.array([2.0, 3.0]))
    np.testing.assert_array_equal((c * x).data(), [2j, 6.0])
    np.testing.assert_array_equal((c * c).data(), [-1.0, 4.0])
    w = Tensor(np.array([2.0, 3.0])).requires_grad()
    with no_grad():
        np.testing.assert_array_equal((w * c).data(), [2j, 6.0])
    np.testing.assert_array_equal((w.detach() * c).data(), [2j, 6.0])


@pytest.mark.parametrize("data", [
    np.array([1, "a"], dtype=object),
    np.array(["a", "b"]),
    np.array([b"a"]),
    ["a", "b"],
    [1.0, None],
    np.array(["2020-01-01"], dtype="datetime64[D]"),
])
def test_tensor_refuses_object_string_and_date_data(data: object) -> None:
    with pytest.raises(ap.DTypeError, match="Tensor: cannot make a tensor from .* numpy dtype"):
        Tensor(data)


def test_tensor_refuses_object_dtype_argument_and_object_operands() -> None:
    with pytest.raises(ap.DTypeError, match="numpy dtype object"):
        Tensor([1.0, 2.0], dtype=object)
    x = Tensor(np.ones(2))
    with pytest.raises(ap.DTypeError, match="dtype object"):
        x * np.array([1.0, 2.0], dtype=object)


def test_ragged_lists_raise_a_shape_error() -> None:
    with pytest.raises(ap.ShapeError, match=r"different lengths \(a ragged list"):
        Tensor([[1, 2], [3]])
    with pytest.raises(ap.ShapeError, match="ragged"):
        Tensor([[1.0, 2.0], [3.0]], dtype=np.float64)
    with pytest.raises(ap.ShapeError, match="ragged"):
        Tensor(np.ones(2)) + [[1.0, 2.0], [3.0]]


def test_accepted_kinds_keep_their_dtypes() -> None:
    assert Tensor([True, False]).dtype == np.bool_
    assert Tensor([1, 2]).dtype == np.float32
    assert Tensor(np.array([1, 2], dtype=np.int64)).dtype == np.int64
    assert Tensor(np.array([1, 2], dtype=np.uint8)).dtype == np.uint8
    assert Tensor([1j]).dtype == np.complex128


def test_index_ops_do_not_save_the_indexed_tensor() -> None:
    """Their gradients read only its shape: updating it in place before backward() is fine,
    as in PyTorch (the index arrays are still checked)."""
    w = Tensor(np.arange(6.0).reshape(3, 2)).requires_grad()
    y = w[np.array([0, 2, 2])].sum() + w.gather(1, np.array([[1], [0], [1]])).sum()
    with ap.no_grad():
        w.sub_(1.0)
    y.backward()
    np.testing.assert_array_equal(w.grad().data(), [[1.0, 2.0], [1.0, 0.0], [2.0, 3.0]])
    rows = Tensor(np.array([0, 1]))
    z = w[rows].sum()
    rows._data[0] = 2  # the index array itself changed: backward must refuse
    rows._vc[0] += 1
    with pytest.raises(ap.GraphError):
        z.backward()


def test_a_new_gradient_takes_over_an_unshared_array_and_copies_a_shared_one() -> None:
    """The engine gives a leaf the gradient array its VJP made when nothing else holds it (as
    PyTorch's AccumulateGrad steals it), and a copy when another leaf, the caller's seed or a
    view could see it: gradients accumulated later never show up anywhere else."""
    x = ap.Tensor(np.ones(3)).requires_grad()
    y = ap.Tensor(np.ones(3)).requires_grad()
    (x + y).sum().backward()  # add's VJP hands the same tensor to both leaves
    assert not np.shares_memory(x.grad().data(), y.grad().data())
    (x * 2.0 + y).sum().backward()
    np.testing.assert_array_equal(x.grad().data(), [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(y.grad().data(), [2.0, 2.0, 2.0])
    seed = ap.Tensor(np.full(3, 5.0))
    z = ap.Tensor(np.ones(3)).requires_grad()
    z.backward(seed)
    z.backward(seed)
    np.testing.assert_array_equal(seed.data(), [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(z.grad().data(), [10.0, 10.0, 10.0])
    w = ap.Tensor(np.ones((2, 3))).requires_grad()
    v = w.T  # the VJP of a transpose is a view of its incoming gradient
    (v * ap.Tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
    assert w.grad()._data.base is None  # copied, not a view of an engine temporary
    np.testing.assert_array_equal(w.grad().data(), np.arange(6.0).reshape(3, 2).T)


def test_an_unshared_gradient_array_is_not_copied() -> None:
    x = ap.Tensor(np.ones(1_000_000)).requires_grad()
    loss = (x * 3.0).sum()
    tracemalloc.start()
    loss.backward()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 12e6  # one 8 MB gradient array, not that array and its copy
    np.testing.assert_array_equal(x.grad().data()[:3], [3.0, 3.0, 3.0])
