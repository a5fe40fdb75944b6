"""Reverse-mode autodiff over the eager tape: ``backward()`` and ``grad()``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DTypeError, GraphError, ShapeError, describe, with_location
from ..ir.graph import Node
from .anomaly import check_finite
from .state import STATE, GradMode
from .tensor import Tensor, _wrap


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
    seed = grad if isinstance(grad, Tensor) else Tensor(np.asarray(grad, dtype=root.dtype))
    if tuple(seed.shape) != tuple(root.shape):
        raise ShapeError(with_location(f"{op}: grad {describe(seed)} does not match "
                                       f"{describe(root)}"))
    return seed


def _check_node(node: Node) -> None:
    """Raise before any gradient is computed if ``node`` cannot be differentiated any more."""
    if node.tape.cleared:
        raise GraphError(with_location(
            f"backward: the graph through {node.op.name} was dropped by clear_graph(); run the "
            f"forward pass again before calling backward()"))
    for i, (counter, version) in enumerate(node.saved):
        if counter[0] != version:
            what = "its output" if i == len(node.inputs) else f"input {i}"
            raise GraphError(with_location(
                f"backward: {node.op.name} needs {what} as it was when recorded"
                + (f" at {node.src}" if node.src else "")
                + f", but it was changed in place since (version {version} -> {counter[0]}); "
                  f"update it after backward(), or use a copy"))


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


def run_backward(root: Tensor, seed: Tensor, create_graph: bool,
                 capture: frozenset[Node] = frozenset()) -> tuple[dict, dict]:
    """Propagate ``seed`` from ``root`` to the leaves.

    Returns ``(leaf_grads, captured)``: ``id(leaf) -> (leaf, grad)`` and ``node -> grad`` for the
    nodes in ``capture``. Nothing is written anywhere, so a failure leaves state unchanged.
    """
    leaf_grads: dict[int, tuple[Tensor, Tensor]] = {}
    captured: dict[Node, Tensor] = {}
    if root._node is None:
        if root._rg:
            leaf_grads[id(root)] = (root, seed)
        return leaf_grads, captured
    consumers = _collect(root._node)
    grads: dict[Node, Tensor] = {root._node: seed}
    ready = [root._node]
    anomaly = STATE.anomaly
    STATE.anomaly = False  # checked per gradient below, named after the op being differentiated
    try:
        _propagate(ready, grads, consumers, leaf_grads, captured, capture, anomaly, create_graph)
    finally:
        STATE.anomaly = anomaly
    return leaf_grads, captured


def _propagate(ready: list[Node], grads: dict, consumers: dict, leaf_grads: dict,
               captured: dict, capture: frozenset, anomaly: bool, create_graph: bool) -> None:
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
                needs = tuple([t._rg for t in inputs])
                in_grads = op.vjp(g, out, inputs, node.attrs, needs)
                for t, gi in zip(inputs, in_grads, strict=True):
                    if gi is None or not t._rg:
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
    STATE.recorder = None  # the gradient ops are derived symbolically, not recorded
    try:
        leaf_grads, _ = run_backward(root, seed, create_graph)
    finally:
        STATE.recorder = rec
    if rec is not None:
        rec.backward(root, list(leaf_grads.values()))
        return
    with GradMode(create_graph):
        for leaf, g in leaf_grads.values():
            if leaf._grad is not None:
                leaf._grad = leaf._grad.add(g)
            elif create_graph:
                leaf._grad = g
            else:  # a fresh, writable array the leaf owns alone
                leaf._grad = _wrap(np.array(g._data, copy=True), None, False)


def grad(output: Tensor, inputs: Sequence[Tensor], grad_output: Any = None,
         create_graph: bool = False) -> list[Tensor | None]:
    """d(output)/d(input) for each of ``inputs`` (leaves or not), without touching ``grad()``.

    Like ``torch.autograd.grad``: None for an input that ``output`` does not depend on.
    """
    seed = _seed(output, grad_output, "grad")
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
