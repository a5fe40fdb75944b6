"""Algebraic simplification: identities that remove work without changing any value.

x*1, 1*x, x/1, x+(-0), (-0)+x, x-0 -> x (bit for bit, signed zeros included); detach -> x;
neg(neg x) -> x; transpose of transpose -> one transpose
(or none); reshape of reshape -> one reshape; reshape/broadcast_to/sum_to/astype to what the
value already is -> the value; an element-wise operand ``broadcast_to(y)`` -> ``y`` when numpy
broadcasting gives the same result (the broadcasts of ones from sum/mean backward);
``sum_to`` that only sums leading axes (bias gradients) -> ``sum`` over those axes, which the
code generator writes with ``out=``; the row sums of a ``one_hot`` -> ones (its kernel raises
on a label out of range, so every row it returns holds exactly one 1). Every rule keeps the
result's shape and dtype.
"""

from __future__ import annotations

import numpy as np

from ...ir.graph import Graph, Node, Value
from ...ir.ops.sources import CONSTANT
from ...ir.registry import get_op
from .rewrite import substitute

#: op -> (unit, operand positions, sign bit of the unit): ``x + -0.0`` and ``x - 0.0`` keep
#: every value of x bit for bit (``-0.0 + 0.0`` is ``+0.0``, so ``x + 0.0`` is no identity)
_IDENTITY_OPERAND = {"mul": (1.0, (0, 1), False), "add": (0.0, (0, 1), True),
                     "sub": (0.0, (1,), False), "div": (1.0, (1,), False)}


def _const(v: Value, producers: dict[int, Node]) -> np.ndarray | None:
    node = producers.get(id(v))
    return node.attrs["value"] if node is not None and node.op is CONSTANT else None


def _same_type(a: Value, b: Value) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


def simplify(graph: Graph) -> Graph:
    """Apply the identities in this module's docstring until none applies to a node."""
    producers: dict[int, Node] = {}
    mapping: dict[int, Value] = {}
    nodes: list[Node] = []

    def resolve(v: Value) -> Value:
        while id(v) in mapping:
            v = mapping[id(v)]
        return v

    for node in graph.nodes:
        inputs = tuple(resolve(v) for v in node.inputs)
        if any(a is not b for a, b in zip(inputs, node.inputs, strict=True)):
            node = Node(node.op, inputs, node.attrs, out=node.out, src=node.src, tag=node.tag)
        replacement = _rewrite(node, producers)
        if isinstance(replacement, Value):
            mapping[id(node.out)] = replacement
            continue
        node = replacement or node
        producers[id(node.out)] = node
        nodes.append(node)
    return substitute(graph, nodes, mapping)


def _rewrite(node: Node, producers: dict[int, Node]) -> Value | Node | None:
    """A value equal to ``node.out``, a cheaper node computing it, or None."""
    name, x, out = node.op.name, node.inputs, node.out
    if name in _IDENTITY_OPERAND:
        unit, positions, sign = _IDENTITY_OPERAND[name]
        for pos in positions:
            c = _const(x[pos], producers)
            other = x[1 - pos]
            if c is not None and np.all(c == unit) and _same_type(other, out) and \
                    np.all(np.signbit(c) == sign):
                return other
    if name == "sum" and node.attrs["axis"] == (len(x[0].shape) - 1,):
        inner = producers.get(id(x[0]))
        if inner is not None and inner.op.name == "one_hot":
            return Node(CONSTANT, (), {"value": np.ones(out.shape, out.dtype)}, out=out,
                        src=node.src, tag=node.tag)
    if name == "sum_to":
        lead = len(x[0].shape) - len(out.shape)
        if lead > 0 and x[0].shape[lead:] == out.shape:
            return Node(get_op("sum"), x, {"axis": tuple(range(lead)), "keepdims": False},
                        out=out, src=node.src, tag=node.tag)
    if name == "neg":
        inner = producers.get(id(x[0]))
        if inner is not None and inner.op.name == "neg":
            return inner.inputs[0]
    if name == "detach":  # a stop-gradient edge matters to autodiff only, which has run
        return x[0]
    if name in ("reshape", "broadcast_to", "sum_to", "astype") and _same_type(x[0], out):
        return x[0]
    if name == "transpose":
        if node.attrs["axes"] == tuple(range(len(out.shape))):
            return x[0]
        inner = producers.get(id(x[0]))
        if inner is not None and inner.op.name == "transpose":
            axes = tuple(inner.attrs["axes"][a] for a in node.attrs["axes"])
            if axes == tuple(range(len(axes))):
                return inner.inputs[0]
            return Node(node.op, inner.inputs, {"axes": axes}, out=out, src=node.src,
                        tag=node.tag)
    if name == "reshape":
        inner = producers.get(id(x[0]))
        if inner is not None and inner.op.name == "reshape":
            return Node(node.op, inner.inputs, node.attrs, out=out, src=node.src, tag=node.tag)
    if node.op.kind == "elementwise" and len(x) > 1:
        unwrapped = list(x)
        for i, v in enumerate(x):
            inner = producers.get(id(v))
            if inner is not None and inner.op.name == "broadcast_to":
                unwrapped[i] = inner.inputs[0]
                try:
                    ok = np.broadcast_shapes(*(u.shape for u in unwrapped)) == out.shape
                except ValueError:
                    ok = False
                if not ok:
                    unwrapped[i] = v
        if any(a is not b for a, b in zip(unwrapped, x, strict=True)):
            return Node(node.op, tuple(unwrapped), node.attrs, out=out, src=node.src,
                        tag=node.tag)
    return None
