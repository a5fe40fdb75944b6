"""Programs an adversarial tester found where ``ap.compile(fn)`` differed from eager ``fn``;
each now compiles to what eager does, or is refused clearly (``_refused``).

Each test is one minimal user pattern; its docstring says what eager does and what the compiled
call did before the fix. SPEC section 4: a compiled call returns what eager would have
returned and leaves every object as eager would have left it, or raises a clear
``AprenderError``; never a silently different result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from differential import Program, run_differential

import aprender as ap
import aprender.nn.functional as F
from aprender import nn

F64 = np.float64


def _data(i: int, shape: Any, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(1000 * seed + i).standard_normal(shape)


def _equal(build: Any, calls: int = 4, **kw: Any) -> None:
    assert run_differential(build, calls, **kw) == "equal"


def _refused(build: Any, calls: int = 4) -> None:
    """The compiled call refuses with an AprenderError and leaves the state as it was."""
    assert run_differential(build, calls, may_refuse=True) == "refused"


# --- integer indexing: 0-d index values are read at trace time and baked ----------------------
def test_zero_d_index_array_argument_is_an_input() -> None:
    """``w[a]`` with ``a = np.array(k)`` (a 0-d integer array, e.g. ``labels[j]`` from numpy).
    Eager: row ``k`` of this call. Compiled: the row of the call that was traced, on every
    later call (``runtime/tensor.py::_normalize_index`` turns a 0-d index into ``int(...)``
    of the stand-in tensor's value, without ``check_read``)."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (4, 3))).requires_grad()
        return Program(lambda a: w[a] * 2.0, {"w": w}, lambda i: ((np.array(i % 4),), {}))

    _equal(build)


def test_element_of_index_array_argument_used_as_index() -> None:
    """``w[idx[0]]`` with ``idx`` a numpy argument: ``idx[0]`` is a 0-d stand-in tensor.
    Eager: row ``idx[0]`` of this call. Compiled: the traced call's row forever (same cause:
    ``_normalize_index`` reads the 0-d tensor's value)."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (4, 3))).requires_grad()
        return Program(lambda idx: w[idx[0]] * 2.0, {"w": w},
                       lambda i: ((np.array([i % 4, 1]),), {}))

    _equal(build)


def test_rows_by_iterating_an_index_array_argument() -> None:
    """``[w[j] for j in idx]``: eager gives this call's rows; compiled gives the traced call's
    rows (each ``j`` is a 0-d stand-in tensor whose value is baked)."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (5, 3))).requires_grad()
        return Program(lambda idx: [w[j] for j in idx], {"w": w},
                       lambda i: ((np.array([i % 3, 1]),), {}))

    _equal(build)


def test_row_at_argmax_of_index_argument() -> None:
    """``w[idx.argmax()]``: eager indexes by this call's argmax; compiled by the traced one."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (5, 3))).requires_grad()
        return Program(lambda idx: w[idx.argmax()] * 1.0, {"w": w},
                       lambda i: ((np.array([i % 3, 1, 2]),), {}))

    _equal(build, calls=3)


def test_captured_zero_d_counter_tensor_used_as_index() -> None:
    """A captured 0-d int tensor ``k`` (a step counter updated in place) used as ``w[k]``.
    Eager: row 0, then row 1, ...; compiled: row 0 on every call although ``k`` advances (a
    captured tensor is an input by reference, but its value was baked as an int)."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (5, 3))).requires_grad()
        k = ap.Tensor(np.array(0))

        def f() -> ap.Tensor:
            row = w[k] * 1.0
            k.add_(1)
            return row

        return Program(f, {"w": w, "k": k}, lambda i: ((), {}))

    _equal(build)


# --- numpy arrays reached through closures, transformed by numpy inside the function ---------
def test_numpy_closure_array_sliced_inside_the_function() -> None:
    """``w * arr[1]`` with ``arr`` a closure numpy array the user edits in place between
    calls. Eager: the current ``arr[1]``; compiled: the values ``arr[1]`` had at trace time
    (the numpy view made inside the trace is a new array, so it becomes a constant; only arrays
    that enter a tensor op directly are inputs)."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (3,))).requires_grad()
        arr = np.ones((2, 3))

        def between(i: int, s: dict) -> None:
            s["arr"][:] = i

        return Program(lambda: w * arr[1], {"w": w, "arr": arr}, lambda i: ((), {}), between)

    _equal(build)


def test_index_computed_with_numpy_from_closure_array() -> None:
    """``w[arr + 1]`` with ``arr`` a closure integer array edited in place: eager gathers the
    current rows, compiled keeps gathering the rows of the traced call (stale rows)."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (5, 3))).requires_grad()
        arr = np.array([0, 1])

        def between(i: int, s: dict) -> None:
            s["arr"][:] = [i % 4, 3 - i % 4]

        return Program(lambda: w[arr + 1], {"w": w, "arr": arr}, lambda i: ((), {}), between)

    _equal(build)


def test_float_of_numpy_closure_array_read_inside() -> None:
    """``w * float(arr.sum())`` with ``arr`` a closure array edited in place: eager reads the
    current sum; compiled keeps the traced sum (no guard on the value, no refusal)."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (3,))).requires_grad()
        arr = np.ones(3)

        def between(i: int, s: dict) -> None:
            s["arr"][:] = i

        return Program(lambda: w * float(arr.sum()), {"w": w, "arr": arr},
                       lambda i: ((), {}), between)

    _equal(build)


def test_sdpa_numpy_bool_mask_in_closure_edited_in_place() -> None:
    """A boolean numpy ``attn_mask`` kept on an object/closure and refreshed in place each
    batch. Eager: attention with the current mask; compiled: with the traced mask
    (``nn/functional/attention.py::mask_bias`` turns a numpy mask into a new array with
    ``np.where``, which becomes a constant)."""
    def build() -> Program:
        q = ap.Tensor(_data(0, (2, 3, 4))).requires_grad()
        mask = _data(0, (3, 5)) > 0

        def f(x: np.ndarray) -> ap.Tensor:
            return F.scaled_dot_product_attention(q, ap.Tensor(x), ap.Tensor(x), attn_mask=mask)

        def between(i: int, s: dict) -> None:
            s["mask"][:] = _data(i, (3, 5)) > 0

        return Program(f, {"q": q, "mask": mask}, lambda i: ((_data(i, (2, 5, 4)),), {}),
                       between)

    _equal(build)


# --- leaves created inside the compiled function ---------------------------------------------
def test_gradient_of_leaf_created_inside_is_returned() -> None:
    """``t = ap.Tensor(x).requires_grad(); (t * t).sum().backward(); return t.grad()``.
    Eager returns ``2 * x``; compiled returns None (the trace's born leaf is not differentiated
    and its gradient is undone: ``runtime/tracing.py::_finish`` skips born leaves in
    ``grad_writes`` and the ``grad`` result reads the trace-time tensor)."""
    def f(x: np.ndarray) -> Any:
        t = ap.Tensor(x).requires_grad()
        (t * t).sum().backward()
        return t.grad()

    _refused(lambda: Program(f, {}, lambda i: ((_data(i, 3),), {})))


def test_max_pool_input_gradient_of_leaf_made_inside() -> None:
    """Same pattern with a new op: ``t = ap.Tensor(x).requires_grad()``, ``F.max_pool2d``,
    backward, ``return out, t.grad()``: eager returns the routing gradient, compiled None."""
    def f(x: np.ndarray) -> Any:
        t = ap.Tensor(x).requires_grad()
        out = F.max_pool2d(t, 2)
        out.sum().backward()
        return out, t.grad()

    _refused(lambda: Program(f, {}, lambda i: ((_data(i, (1, 2, 4, 4)),), {})))


def test_rand_requires_grad_inside_compiled_step() -> None:
    """``r = ap.rand(3, generator=g, requires_grad=True); (r * r).sum().backward()``: eager
    works (``r`` is a leaf that requires grad); compiled raises GraphError ('does not require
    grad') although eager does not."""
    def build() -> Program:
        g = ap.Generator(0)

        def f() -> Any:
            r = ap.rand(3, generator=g, dtype=F64, requires_grad=True)
            (r * r).sum().backward()
            return r, r.grad()

        return Program(f, {"g": g}, lambda i: ((), {}))

    _refused(build)


# --- returned results aliasing state that later calls update ---------------------------------
def test_returned_value_assigned_into_state_is_not_aliased() -> None:
    """``new = acc + x; acc.assign(new); return new``. Eager: ``new`` is its own array, the
    result of call 0 stays ``x0``. Compiled: the result is the updated buffer's array, so every
    later call changes results the caller already holds (``jit.py::_borrowed`` only copies
    outputs that alias graph inputs or constants, not an output that is also an update written
    into an input)."""
    def build() -> Program:
        acc = ap.Tensor(np.zeros(3))

        def f(x: np.ndarray) -> ap.Tensor:
            new = acc + ap.Tensor(x)
            acc.assign(new)
            return new

        return Program(f, {"acc": acc}, lambda i: ((_data(i, 3),), {}))

    _equal(build)


def test_buffer_times_one_after_add_is_not_aliased() -> None:
    """``acc.add_(x); return acc * 1.0`` (a copy in eager). Compiled: ``* 1.0`` is simplified
    away and the result aliases ``acc``; held results change on later calls."""
    def build() -> Program:
        acc = ap.Tensor(np.zeros(3))

        def f(x: np.ndarray) -> ap.Tensor:
            acc.add_(ap.Tensor(x))
            return acc * 1.0

        return Program(f, {"acc": acc}, lambda i: ((_data(i, 3),), {}))

    _equal(build)


# --- compiled forwards keep numpy arguments by reference for their backward ------------------
def test_backward_after_the_numpy_batch_buffer_is_refilled() -> None:
    """Gradient accumulation over micro-batches from a loader that refills one numpy buffer:
    ``total = fast(buf) + ...`` then ``total.backward()``. Eager: ``ap.Tensor(buf)`` copied
    each batch, so the gradient is the sum over the three batches. Compiled: the backward of
    every call reads ``buf`` as it is at backward time (the last batch): a silently wrong
    gradient (``jit.py::Entry.gather`` passes the argument array itself and the saved values
    of ``_Call`` alias it; no copy and no version check for numpy arguments)."""
    grads = []
    for compiled in (False, True):
        m = nn.Linear(3, 1, rng=0, dtype=F64)

        def f(x: np.ndarray, m: nn.Linear = m) -> ap.Tensor:
            return (m(ap.Tensor(x)) ** 2).mean()

        fn = ap.compile(f) if compiled else f
        buf = np.empty((4, 3))
        total = None
        for i in range(3):
            buf[...] = _data(i, (4, 3))
            loss = fn(buf)
            total = loss if total is None else total + loss
        total.backward()
        grads.append(m.weight.grad().data().copy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-10)


# --- generator state read with numpy inside the function -------------------------------------
def test_generator_get_state_set_state_replays_the_same_mask() -> None:
    """Activation-checkpointing style replay: ``st = g.get_state(); a = dropout(x, g);
    g.set_state(st); b = dropout(x, g)``. Eager: ``a == b`` every call and the counter moves
    by one per call. Compiled: ``st`` is the trace-time state baked as a constant, so from the
    second call ``b`` uses the first call's mask and the counter is reset to it
    (``runtime/random.py::Generator.get_state`` reads ``state._data`` without ``check_read``)."""
    def build() -> Program:
        g = ap.Generator(0)

        def f(x: np.ndarray) -> Any:
            st = g.get_state()
            a = F.dropout(ap.Tensor(x), 0.5, True, g)
            g.set_state(st)
            b = F.dropout(ap.Tensor(x), 0.5, True, g)
            return a, b

        return Program(f, {"g": g}, lambda i: ((_data(i, (4, 3)),), {}))

    _refused(build)


def test_generator_initial_seed_read_inside() -> None:
    """``float(g.initial_seed() % 7)`` used as a scale; the user reseeds ``g`` between calls.
    Eager uses the new seed; compiled keeps the traced seed (``initial_seed`` reads
    ``state._data`` directly: no guard, no refusal)."""
    def build() -> Program:
        g = ap.Generator(0)

        def between(i: int, s: dict) -> None:
            if i == 2:
                s["g"].manual_seed(12)

        return Program(lambda x: ap.Tensor(x) * float(g.initial_seed() % 7), {"g": g},
                       lambda i: ((_data(i, (4, 3)),), {}), between)

    _refused(build)


# --- errors -----------------------------------------------------------------------------------
def test_out_of_range_index_raises_the_eager_error_type() -> None:
    """``w[idx]`` with an index out of range on a cached call. Eager raises ``ShapeError``
    (a ValueError); compiled raises ``ExecutionError`` (a RuntimeError) from inside the
    generated code, so ``except ShapeError``/``except ValueError`` written against eager does
    not catch it."""
    w = ap.Tensor(_data(0, (5, 3))).requires_grad()
    fast = ap.compile(lambda idx: w[idx] * 1.0)
    fast(np.array([0, 1]))
    fast(np.array([2, 3]))
    with pytest.raises(ap.ShapeError):
        w[np.array([0, 7])] * 1.0
    with pytest.raises(ap.ShapeError):
        fast(np.array([0, 7]))


# --- eager raises, compiled returns ----------------------------------------------------------
# --- numpy arguments become Tensor stand-ins: numpy methods change meaning or fail ---------
# ``jit.py::CompiledFunction._miss`` hands ``fn`` a ``Tensor`` (``Tensor._as_input``) for each
# numpy-array argument, so ``x.method()`` runs aprender's (PyTorch-style) method where eager
# runs numpy's.
@pytest.mark.parametrize("name, use", [
    # numpy: population std/var (ddof=0); aprender: unbiased (correction=1): silently different
    ("x.std()", lambda x: x.std()),
    ("x.var(axis=0)", lambda x: x.var(axis=0)),
    # numpy: element-wise repeat [a, a, b, b, ...]; aprender: tile [a, b, ..., a, b, ...]
    ("x[0].repeat(2)", lambda x: x[0].repeat(2)[:3]),
])
def test_numpy_argument_method_keeps_numpy_meaning(name: str, use: Any) -> None:
    """Eager: numpy's method on the numpy argument; compiled: a different number, no error."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (4, 3))).requires_grad()
        return Program(lambda x: w * use(x), {"w": w}, lambda i: ((_data(i, (4, 3)),), {}))

    _refused(build)


@pytest.mark.parametrize("name, use", [
    ("idx % 4 (wrap-around positions)", lambda w, a: w[a % 4]),
    ("idx // 2", lambda w, a: w[a // 2]),
    ("x.ravel()", lambda w, a: w * a.ravel()[:, None]),
])
def test_numpy_argument_operator_that_tensors_lack(name: str, use: Any) -> None:
    """Eager: numpy evaluates ``a % 4``, ``a // 2``, ``&``, ``clip(min=)``, ``ravel()`` on the
    integer argument; compiled raises a plain TypeError/AttributeError (not an AprenderError
    saying why), so a program that runs eagerly cannot be compiled."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (4, 3))).requires_grad()
        return Program(lambda a: use(w, a), {"w": w},
                       lambda i: ((np.array([i, 5, 7, 2]),), {}))

    _refused(build, calls=2)


# --- numpy class weights kept by the user and updated in place -------------------------------
def test_cross_entropy_numpy_class_weight_edited_in_place() -> None:
    """Class-balanced training: ``weight=cw`` with ``cw`` a numpy array the user recomputes in
    place between steps. Eager weighs by the current ``cw``; compiled by the traced one
    (``nn/functional/losses.py::_float_like`` does ``Tensor(array.astype(x.dtype))``: a copy,
    so a constant; the same for ``nll_loss`` weight and ``pos_weight``)."""
    def build() -> Program:
        w = ap.Tensor(_data(0, (6, 4))).requires_grad()
        cw = np.ones(4)

        def f(y: np.ndarray) -> ap.Tensor:
            loss = F.cross_entropy(w * 1.0, y, weight=cw)
            loss.backward()
            return loss

        def between(i: int, s: dict) -> None:
            s["cw"][:] = np.abs(_data(i, 4)) + 0.1

        return Program(f, {"w": w, "cw": cw},
                       lambda i: ((np.random.default_rng(i).integers(0, 4, 6),), {}), between)

    _equal(build)


# --- compiled forwards check versions of inputs their backward never reads --------------------
# ``jit.py::Entry._join`` records the version of every tensor input of the call
# (``saved_versions``), including buffers the call itself updates (running statistics, a
# generator's state) and parameters whose value the requested gradients do not read; eager
# saves only what each op's gradient reads.
def test_two_views_through_compiled_batchnorm_then_one_backward() -> None:
    """SimCLR / siamese style: ``z1 = fast(x1); z2 = fast(x2); (z1 * z2).sum().backward()``
    with a BatchNorm in training. Eager: works (BN's backward reads the batch statistics, not
    the running ones). Compiled: GraphError 'needs a tensor it saved as it was when recorded',
    because the second call updated ``running_mean``/``running_var`` in place."""
    grads = []
    for compiled in (False, True):
        lin = nn.Linear(3, 3, rng=0, dtype=F64)
        bn = nn.BatchNorm1d(3, dtype=F64)

        def f(x: np.ndarray, lin: nn.Linear = lin, bn: nn.BatchNorm1d = bn) -> ap.Tensor:
            return bn(lin(ap.Tensor(x)))

        fn = ap.compile(f) if compiled else f
        z1, z2 = fn(_data(0, (4, 3))), fn(_data(1, (4, 3)))
        (z1 * z2).sum().backward()
        grads.append(lin.weight.grad().data().copy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-10)


def test_two_dropout_passes_through_a_compiled_forward_then_one_backward() -> None:
    """SimCSE style: the same batch twice through a model with dropout, then one loss.
    Eager: works. Compiled: GraphError in backward, because the second call advanced the
    generator's state tensor in place (an input of the first call that its backward never
    reads)."""
    grads = []
    for compiled in (False, True):
        w = ap.Tensor(_data(0, (4, 3))).requires_grad()
        g = ap.Generator(0)

        def f(x: np.ndarray, w: ap.Tensor = w, g: ap.Generator = g) -> ap.Tensor:
            return F.dropout(w * ap.Tensor(x), 0.5, True, g)

        fn = ap.compile(f) if compiled else f
        a, b = fn(_data(1, (4, 3))), fn(_data(1, (4, 3)))
        (a - b).pow(2).sum().backward()
        grads.append(w.grad().data().copy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-10)


def test_weight_updated_before_backward_that_does_not_read_it() -> None:
    """``y = fast(x)`` (``nn.Linear``; ``x`` needs no gradient), then an in-place EMA/SGD-style
    edit of the weight, then ``y.sum().backward()``. Eager: fine (the weight gradient reads
    ``x`` only; matmul saves only what the needed gradient reads). Compiled: GraphError
    claiming the backward needs the weight as it was."""
    grads = []
    for compiled in (False, True):
        m = nn.Linear(3, 2, rng=0, dtype=F64)

        def f(x: np.ndarray, m: nn.Linear = m) -> ap.Tensor:
            return m(ap.Tensor(x))

        fn = ap.compile(f) if compiled else f
        y = fn(_data(0, (4, 3)))
        with ap.no_grad():
            m.weight.mul_(0.9)
        y.sum().backward()
        grads.append(m.weight.grad().data().copy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-10)


# --- gradients taken inside the function: a VJP that reads the op's output ----------------------
@pytest.mark.parametrize("op", ["exp", "sqrt", "sigmoid", "tanh", "softmax"])
def test_create_graph_gradient_reading_a_saved_output_is_recomputed(op: str) -> None:
    """``grad(f(x).sum(), [x], create_graph=True)`` inside the function, for an op whose VJP
    reads its output (``exp``: ``g * out``). Eager: this call's ``exp(x)``. Compiled: the traced
    call's ``exp(x)`` as a constant (the engine hands the VJP a new tensor on the node, which
    the trace took for a tensor made from a Python value)."""
    def build() -> Program:
        w = ap.Tensor(np.abs(_data(0, (3,))) + 0.5).requires_grad()

        def f(x: ap.Tensor) -> ap.Tensor:
            y = getattr(x * w, op)()
            (g,) = ap.autograd.grad((y * y).sum(), [x], create_graph=True)
            return g * 2.0

        return Program(f, {"w": w},
                       lambda i: ((ap.Tensor(np.abs(_data(i, (3,))) + 0.1).requires_grad(),),
                                  {}))

    _equal(build)
