"""Decomposition: fused eager ops become the smaller ops the compiler can share and plan.

- ``cross_entropy(z, t)`` -> ``neg(sum(mul(log_softmax(z), t), axis=1))``;
- ``softmax(z, axis)`` -> ``exp(log_softmax(z, axis))`` when the graph already computes that
  log_softmax (the loss's backward then reuses the forward's log-probabilities via CSE).

Eager mode keeps the fused ops (fewer Python-level ops per step); generated code prefers
shared intermediates.
"""

from __future__ import annotations

from ...ir.graph import Graph, Node, Value, unique_name
from ...ir.registry import get_op


def decompose(graph: Graph) -> Graph:
    """Apply the rewrites in this module's docstring."""
    names = {v.name for v in graph.inputs} | {n.out.name for n in graph.nodes}
    nodes: list[Node] = []
    log_softmax: dict[tuple[int, int], Value] = {}

    def emit(op: str, inputs: tuple, attrs: dict, like: Node, out: Value | None = None) -> Value:
        if out is None:
            shape, dtype = get_op(op).infer(*inputs, **attrs)
            out = Value(unique_name(f"{like.out.name}_{op}", names), shape, dtype)
        nodes.append(Node(get_op(op), inputs, attrs, out=out, src=like.src, tag=like.tag))
        return out

    for node in graph.nodes:
        name = node.op.name
        if name == "log_softmax":
            log_softmax.setdefault((id(node.inputs[0]), node.attrs["axis"]), node.out)
            nodes.append(node)
        elif name == "cross_entropy":
            z, t = node.inputs
            ls = log_softmax.get((id(z), 1))
            if ls is None:
                ls = log_softmax[(id(z), 1)] = emit("log_softmax", (z,), {"axis": 1}, node)
            picked = emit("mul", (ls, t), {}, node)
            total = emit("sum", (picked,), {"axis": (1,), "keepdims": False}, node)
            emit("neg", (total,), {}, node, out=node.out)
        elif name == "softmax" and (id(node.inputs[0]), node.attrs["axis"]) in log_softmax:
            emit("exp", (log_softmax[(id(node.inputs[0]), node.attrs["axis"])],), {}, node,
                 out=node.out)
        else:
            nodes.append(node)
    return graph.rebuilt(nodes)
