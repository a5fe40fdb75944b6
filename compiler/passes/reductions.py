"""Reductions lowered to what numpy does fastest (PERF-NOTES rule 5).

- ``sum`` over the leading axis of a 2-D float value -> ``matmul(ones, x)``: a gemv, about a
  sixth of ``add.reduce(axis=0)`` at training sizes (the bias gradients).
- ``mean`` -> ``div(sum, count)``: what ``np.mean`` computes, without its Python wrapper.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir.graph import Graph, Node, Value, unique_name
from ...ir.ops.sources import CONSTANT
from ...ir.registry import get_op


def lower_reductions(graph: Graph) -> Graph:
    """Rewrite the reductions in this module's docstring; everything else is kept."""
    nodes: list[Node] = []
    names = {v.name for v in graph.inputs} | {n.out.name for n in graph.nodes}

    def constant(base: str, array: np.ndarray, like: Node) -> Value:
        value = Value(unique_name(base, names), array.shape, array.dtype)
        nodes.append(Node(CONSTANT, (), {"value": array}, out=value, tag=like.tag))
        return value

    for node in graph.nodes:
        x = node.inputs[0] if node.inputs else None
        if node.op.name == "sum" and x.ndim == 2 and x.dtype.kind == "f" and \
                node.attrs["axis"] == (0,) and not node.attrs["keepdims"]:
            ones = constant(f"ones_{x.shape[0]}", np.ones(x.shape[0], x.dtype), node)
            nodes.append(Node(get_op("matmul"), (ones, x), {}, out=node.out, src=node.src,
                              tag=node.tag))
        elif node.op.name == "mean" and x.dtype.kind == "f" and node.out.dtype == x.dtype:
            axis = node.attrs["axis"]
            count = math.prod(x.shape) if axis is None else math.prod(x.shape[a] for a in axis)
            total = Value(unique_name(f"{node.out.name}_sum", names), node.out.shape,
                          node.out.dtype)
            nodes.append(Node(get_op("sum"), (x,), dict(node.attrs), out=total, src=node.src,
                              tag=node.tag))
            n = constant(f"count_{count}", np.array(count, dtype=x.dtype), node)
            nodes.append(Node(get_op("div"), (total, n), {}, out=node.out, src=node.src,
                              tag=node.tag))
        else:
            nodes.append(node)
    return graph.rebuilt(nodes)
