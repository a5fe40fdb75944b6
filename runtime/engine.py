"""Reverse-mode autodiff over the eager tape: ``backward()`` and ``grad()``.

Two hooks let data-parallel training overlap communication with the backward:
``register_grad_ready_hook(leaf, hook)`` calls ``hook(leaf, grad)`` as soon as a ``backward()``
has summed every contribution to ``leaf``'s gradient, and ``queue_callback(fn)`` (from such a
hook) runs ``fn()`` once at the end of that ``backward()``, after the gradients are written.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import DTypeError, GraphError, ShapeError, describe, with_location
from ..ir.graph import Node
from .anomaly import check_finite
from .state import STATE, GradMode
from .tensor import GradState, TapeNode, Tensor, _wrap, grad_state, own_grad


def _seed(root: Tensor, grad: Any, op: str) -> Tensor:
    """The gradient to start from, after checking ``root`` can be differentiated at all."""
    if root.dtype.kind != "f":
        raise DTypeError(with_location(f"{op}: gradients need a float dtype, got "
                                       f"{describe(root)}"))
    if not root._rg:
        raise GraphError(with_location(
            f"{op}: {describe(root)} does not require grad: no input of it was marked "
            f"with requires_grad(), or it was computed under no_grad()"))
    if grad is None:
        if root.size != 1:
            raise ShapeError(with_location(
                f"{op}: {describe(root)} has {root.size} elements; pass grad= (a tensor of "
                f"the same shape) or reduce it to one element first"))
        return _wrap(np.ones(root.shape, dtype=root.dtype), None, False)
    seed = grad if isinstance(grad, Tensor) else Tensor(grad, root.dtype)
    if seed.dtype.kind not in "biuf":
        raise DTypeError(with_location(f"{op}: grad {describe(seed)} must be real numbers for "
                                       f"{describe(root)}"))
    if tuple(seed.shape) != tuple(root.shape):
        raise ShapeError(with_location(f"{op}: grad {describe(seed)} does not match "
                                       f"{describe(root)}"))
    if seed.dtype != root.dtype:  # as PyTorch: the gradients are computed in the root's dtype
        seed = seed.astype(root.dtype)
    return seed


def _check_node(node: Node) -> None:
    """Raise before any gradient is computed if ``node`` cannot be differentiated any more."""
    if node.tape.cleared:
        raise GraphError(with_location(
            f"backward: the graph through {node.op.name} was dropped by clear_graph(); run the "
            f"forward pass again before calling backward()"))
    for counter, version in node.saved:
        if counter[0] != version:
            what, value = _saved_name(node, counter)
            raise GraphError(with_location(
                f"backward: {node.op.name} needs {what} as it was when recorded"
                + (f" at {node.src}" if node.src else "")
                + ", but it" + ("" if value is None else f" ({describe(value)})")
                + f" was changed in place since (version {version} "
                  f"-> {counter[0]}), directly or through a view such as detach(); update it "
                  f"after backward(), or use a copy"))


def _saved_name(node: Node, counter: list[int]) -> tuple[str, Any]:
    """Which saved tensor of ``node`` has the version counter ``counter``: words, value."""
    for i, t in enumerate(node.inputs):
        if t._vc is counter:
            return f"input {i}", t
    if node.op.save_output:
        return "its output", node.value
    return "a tensor it saved", None


def _collect(root: Node) -> dict[Node, int]:
    """Nodes reachable from ``root`` with the number of their consumers inside that set."""
    _check_node(root)
    consumers: dict[Node, int] = {root: 0}
    stack = [root]
    while stack:
        node = stack.pop()
        for t in node.inputs:
            m = t._node
            if m is None:
                continue
            if m in consumers:
                consumers[m] += 1
            else:
                _check_node(m)
                consumers[m] = 1
                stack.append(m)
    return consumers


def _accumulate(grads: dict, key: Any, g: Tensor) -> None:
    old = grads.get(key)
    grads[key] = g if old is None else old.add(g)


# --- gradient-ready hooks and end-of-backward callbacks ----------------------------------------
#: ``id(leaf) -> (weak reference to the leaf, its hooks)`` (see ``register_grad_ready_hook``)
_READY_HOOKS: dict[int, tuple[weakref.ref, list[Callable[[Tensor, Tensor], None]]]] = {}


class _Callbacks(threading.local):
    #: the callbacks queued during the ``backward()`` this thread is running (None outside one)
    queue: list[Callable[[], None]] | None = None


_CALLBACKS = _Callbacks()


class HookHandle:
    """What ``register_grad_ready_hook`` returns: ``remove()`` unregisters the hook."""

    __slots__ = ("_key", "_hook")

    def __init__(self, key: int, hook: Callable) -> None:
        self._key, self._hook = key, hook

    def remove(self) -> None:
        entry = _READY_HOOKS.get(self._key)
        if entry is not None and self._hook in entry[1]:
            entry[1].remove(self._hook)
            if not entry[1]:
                del _READY_HOOKS[self._key]


def register_grad_ready_hook(leaf: Tensor, hook: Callable[[Tensor, Tensor], None]) -> HookHandle:
    """Call ``hook(leaf, grad)`` during every ``backward()`` that reaches ``leaf``, as soon as
    all of that backward's contributions to ``leaf``'s gradient are summed into ``grad`` (the
    gradient of this backward alone: it is added into ``leaf.grad()`` when the whole backward
    finishes). Inside a compiled function's trace the hooks run after the staged backward, with
    the gradient placeholders. Like PyTorch's post-accumulate-grad hooks; ``grad()`` (the
    function) runs no hooks."""
    if not isinstance(leaf, Tensor) or not leaf.is_leaf() or not leaf._rg:
        raise GraphError(with_location(f"register_grad_ready_hook: needs a leaf tensor that "
                                       f"requires grad, got {describe(leaf)}"))
    entry = _READY_HOOKS.get(id(leaf))
    if entry is None or entry[0]() is not leaf:  # new, or a dead tensor's id reused
        entry = _READY_HOOKS[id(leaf)] = (weakref.ref(leaf), [])
    entry[1].append(hook)
    return HookHandle(id(leaf), hook)


def hook_registry() -> dict:
    """``id(leaf) -> (weak leaf, hooks)`` of every gradient-ready hook (read by guards)."""
    return _READY_HOOKS


def hook_ids(leaf: Tensor) -> tuple[int, ...]:
    """The identities of ``leaf``'s gradient-ready hooks: a compiled step that traced a
    ``backward()`` guards them, since the hooks it ran (DDP's all-reduces) are in its graph."""
    entry = _READY_HOOKS.get(id(leaf))
    if entry is None or entry[0]() is not leaf:
        return ()
    return tuple(map(id, entry[1]))


def current_backward() -> object | None:
    """A token for the ``backward()`` this thread is running (None outside one): a gradient-
    ready hook tells by it that a new backward began."""
    return _CALLBACKS.queue


def queue_callback(fn: Callable[[], None]) -> None:
    """Run ``fn()`` once at the end of the ``backward()`` now running, after every gradient
    is written (PyTorch's ``queue_callback``); call it from a gradient-ready hook."""
    queue = _CALLBACKS.queue
    if queue is None:
        raise GraphError(with_location("queue_callback: only possible while backward() runs "
                                       "(from a gradient-ready hook)"))
    queue.append(fn)


def _hook_counts(consumers: dict[Node, int]) -> dict[int, int] | None:
    """For each hooked leaf: how many edges of this backward's graph end at it."""
    counts: dict[int, int] = {}
    for node in consumers:
        for t in node.inputs:
            if t._node is None and id(t) in _READY_HOOKS:
                counts[id(t)] = counts.get(id(t), 0) + 1
    return counts or None


def _release(inputs: tuple, pending: dict[int, int], leaf_grads: dict) -> None:
    """A node's gradients are propagated: run the hooks of the leaves it was the last to feed."""
    for t in inputs:
        key = id(t)
        if key in pending:
            pending[key] -= 1
            if pending[key] == 0 and key in leaf_grads:
                _run_hooks(*leaf_grads[key])


def _run_hooks(leaf: Tensor, grad: Tensor) -> None:
    entry = _READY_HOOKS.get(id(leaf))
    if entry is not None and entry[0]() is leaf:
        for hook in list(entry[1]):
            hook(leaf, grad)


def run_backward(root: Tensor, seed: Tensor, create_graph: bool,
                 capture: frozenset[Node] = frozenset(),
                 hooks: bool = False) -> tuple[dict, dict]:
    """Propagate ``seed`` from ``root`` to the leaves.

    Returns ``(leaf_grads, captured)``: ``id(leaf) -> (leaf, grad)`` and ``node -> grad`` for the
    nodes in ``capture``. Nothing is written anywhere, so a failure leaves state unchanged
    (but for what gradient-ready hooks do: ``hooks`` runs them).
    """
    leaf_grads: dict[int, tuple[Tensor, Tensor]] = {}
    captured: dict[Node, Tensor] = {}
    if root._node is None:
        if root._rg:
            leaf_grads[id(root)] = (root, seed)
            if hooks and _READY_HOOKS:
                _run_hooks(root, seed)
        return leaf_grads, captured
    consumers = _collect(root._node)
    pending = _hook_counts(consumers) if hooks and _READY_HOOKS else None
    grads: dict[Node, Tensor] = {root._node: seed}
    ready = [root._node]
    anomaly = STATE.anomaly
    STATE.anomaly = False  # checked per gradient below, named after the op being differentiated
    try:
        _propagate(ready, grads, consumers, leaf_grads, captured, capture, anomaly, create_graph,
                   pending)
    finally:
        STATE.anomaly = anomaly
    return leaf_grads, captured


def _propagate(ready: list[Node], grads: dict, consumers: dict, leaf_grads: dict,
               captured: dict, capture: frozenset, anomaly: bool, create_graph: bool,
               pending: dict[int, int] | None) -> None:
    with GradMode(create_graph):
        while ready:
            node = ready.pop()
            g = grads.pop(node, None)
            inputs = node.inputs
            if g is not None:
                if node in capture:
                    captured[node] = g
                op = node.op
                out = _wrap(node.value, node, True) if op.save_output else None
                # which inputs required grad when the op was recorded (all of them when the
                # tape recorded a plain Node)
                needs = node.needs if type(node) is TapeNode else tuple([t._rg for t in inputs])
                in_grads = op.vjp(g, out, inputs, node.attrs, needs)
                for t, gi, need in zip(inputs, in_grads, needs, strict=True):
                    if gi is None or not need or not t._rg:
                        continue
                    data = gi._data
                    if data.dtype != t._data.dtype:
                        gi = gi.astype(t._data.dtype)
                    if data.shape != t._data.shape:
                        raise GraphError(f"internal: vjp of {op.name} gave {describe(gi)} for "
                                         f"{describe(t)}")
                    if anomaly:
                        check_finite(op.name, gi._data, "backward")
                    if t._node is None:
                        old = leaf_grads.get(id(t))
                        leaf_grads[id(t)] = (t, gi if old is None else old[1].add(gi))
                    else:
                        _accumulate(grads, t._node, gi)
            if pending is not None:
                _release(inputs, pending, leaf_grads)
            for t in inputs:
                m = t._node
                if m is not None:
                    consumers[m] -= 1
                    if consumers[m] == 0:
                        ready.append(m)


def backward(root: Tensor, grad: Any = None, create_graph: bool = False) -> None:
    """``root.backward(grad)``: accumulate gradients into every leaf that requires grad."""
    seed = _seed(root, grad, "backward")
    rec = STATE.recorder
    if rec is not None and (create_graph or root.size != 1):
        raise GraphError(with_location(
            "backward: inside a traced function only backward() of a one-element loss is "
            "supported (no grad= and no create_graph=True)"))
    outer = _CALLBACKS.queue
    queue: list[Callable[[], None]] = []
    _CALLBACKS.queue = queue
    try:
        STATE.recorder = None  # the gradient ops are derived symbolically, not recorded
        try:
            # whether hooks run is decided once, before any runs (a hook may remove itself;
            # one registered meanwhile by another thread waits for the next backward)
            hooked = bool(_READY_HOOKS)
            leaf_grads, _ = run_backward(root, seed, create_graph,
                                         hooks=rec is None and hooked)
        finally:
            STATE.recorder = rec
        if rec is not None:
            pairs = rec.backward(root, list(leaf_grads.values()))
            if _READY_HOOKS:
                for leaf, placeholder in pairs:
                    _run_hooks(leaf, placeholder)
        else:
            with _GRAD_LOCK:  # read-add-write of each leaf's gradient, atomic across threads
                if create_graph:
                    with GradMode(True):
                        for leaf, g in leaf_grads.values():
                            _accumulate_graph(leaf, g)
                else:
                    for leaf, g in leaf_grads.values():
                        _accumulate_into(leaf, g, private=not hooked and g is not seed)
        for fn in queue:  # a callback may queue more: they run too
            fn()
    finally:
        _CALLBACKS.queue = outer


#: held while ``backward()`` adds into leaves' gradients (threads may share parameters)
_GRAD_LOCK = threading.Lock()


def _sole_reference(t: Tensor) -> int:
    """``sys.getrefcount`` of ``t``'s array as seen from here: ``_UNSHARED`` when only ``t``
    holds it (no other tensor, view, node or buffer)."""
    data = t._data
    return sys.getrefcount(data)


def _calibrate() -> int | None:
    """The count ``_sole_reference`` gives for an array only its tensor holds; None when this
    interpreter's counts do not tell one more holder apart (then gradients are always copied)."""
    t = _wrap(np.zeros(1), None, False)
    alone = _sole_reference(t)
    other = t._data  # noqa: F841  (a second holder)
    return alone if _sole_reference(t) == alone + 1 else None


_UNSHARED = _calibrate()


def _accumulate_into(leaf: Tensor, g: Tensor, private: bool = False) -> None:
    """``leaf.grad += g`` as PyTorch does outside create_graph: in place into the gradient
    array the engine made for this leaf (a held ``grad()`` sees the sum); into a new array when
    the gradient came from elsewhere (set by compile or by hand, a view, part of a graph).

    A new gradient takes over ``g``'s array, as PyTorch's AccumulateGrad steals one, when
    nothing else can see it: ``private`` (the caller knows no one outside the engine was
    handed ``g``: not the caller's seed, no gradient-ready hook ran), the array is no view, and
    the reference count proves ``g`` alone holds it; otherwise it is copied."""
    old = leaf._grad
    if old is None:
        steal = private and _UNSHARED is not None and g._data.base is None \
            and g._data.flags.writeable and _sole_reference(g) == _UNSHARED
        own_grad(leaf, g._data if steal else np.array(g._data, copy=True))
        return
    data = old._data
    if grad_state(leaf) is GradState.OWNED:
        np.add(data, g._data, out=data)
        old._vc[0] += 1
        return
    data = np.add(data, g._data)
    own_grad(leaf, data if data.dtype == leaf._data.dtype else data.astype(leaf._data.dtype))


def _accumulate_graph(leaf: Tensor, g: Tensor) -> None:
    """``leaf.grad = leaf.grad + g`` recorded for higher orders (``create_graph=True``); each
    leaf gets its own gradient tensor, never the seed or another leaf's."""
    old = leaf._grad
    if old is not None:
        new = old.add(g)
    elif g._rg:
        new = g.mul(1.0)  # a recorded copy (the gradient stays differentiable)
    else:
        new = None
    if new is None or new._node is None:  # a fresh array nothing else holds
        own_grad(leaf, np.array(g._data, copy=True) if new is None else new._data)
    else:
        leaf._grad = new


def grad(output: Tensor, inputs: Sequence[Tensor], grad_output: Any = None,
         create_graph: bool = False) -> list[Tensor | None]:
    """d(output)/d(input) for each of ``inputs`` (leaves or not), without touching ``grad()``.

    Like ``torch.autograd.grad``: None for an input that ``output`` does not depend on; a
    GraphError for an input that does not require grad.
    """
    seed = _seed(output, grad_output, "grad")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise DTypeError(with_location(f"grad: inputs must be tensors, got {describe(t)} "
                                           f"at position {i}"))
        if not t._rg:
            raise GraphError(with_location(
                f"grad: input {i} ({describe(t)}) does not require grad, so no gradient is "
                f"defined for it; mark it with requires_grad() before computing the output "
                f"from it"))
    capture = frozenset(t._node for t in inputs if t._node is not None)
    leaf_grads, captured = run_backward(output, seed, create_graph, capture)
    if output._node in capture:
        captured[output._node] = seed
    result: list[Tensor | None] = []
    for t in inputs:
        if t._node is None:
            found = leaf_grads.get(id(t))
            result.append(None if found is None else found[1])
        else:
            result.append(captured.get(t._node))
    return result
