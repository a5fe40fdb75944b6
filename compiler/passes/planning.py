"""Planning rules for the generated step (PERF-NOTES rules 4 and 7).

- ReLU mask from the kept output: ``gt(x, 0)`` where the graph also computes ``relu(x)``
  becomes ``gt(relu(x), 0)`` (the same mask: ``x > 0`` exactly when ``max(x, 0) > 0``, NaN
  included). The pre-activation then dies at the ReLU, which writes over it in place, and only
  the ReLU's output is kept for the backward.
- Total of a product as a dot: ``sum(neg?(sum(mul(a, b), axes)))`` over every axis (the mean
  cross-entropy's ``-sum(log_softmax * one_hot)``), with ``a`` and ``b`` of one shape and the
  partial sums read nowhere else, becomes ``dot(a.reshape(-1), b.reshape(-1))`` (with the
  negation, ``0 - dot``, so an exact zero total stays +0.0 as eager's sums give it): one BLAS
  dot instead of a multiply into a temporary and two reductions.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir.graph import Graph, Node, Value, node_outputs, unique_name
from ...ir.ops.sources import CONSTANT
from ...ir.registry import get_op


def _is_zero_constant(v: Value, producers: dict[int, Node]) -> bool:
    node = producers.get(id(v))
    if node is None or node.op is not CONSTANT or v.shape != ():
        return False
    value = node.attrs["value"]
    return bool(np.asarray(value) == 0)


def relu_masks(graph: Graph) -> Graph:
    """``gt(x, 0)`` -> ``gt(relu(x), 0)`` when ``relu(x)`` is computed earlier (see above)."""
    producers = {id(v): n for n in graph.nodes for v in node_outputs(n)}
    relu_of: dict[int, Value] = {}
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.op.name == "relu":
            relu_of.setdefault(id(node.inputs[0]), node.out)
        elif node.op.name == "gt" and id(node.inputs[0]) in relu_of and \
                _is_zero_constant(node.inputs[1], producers) and \
                relu_of[id(node.inputs[0])].dtype == node.inputs[0].dtype:
            node = Node(node.op, (relu_of[id(node.inputs[0])], node.inputs[1]), node.attrs,
                        out=node.out, src=node.src, tag=node.tag)
        nodes.append(node)
    return graph.rebuilt(nodes)


def product_totals(graph: Graph) -> Graph:
    """``sum(neg?(sum(mul(a, b), axes)))`` -> ``(0 -)? dot(flat a, flat b)`` (see above)."""
    producers = {id(v): n for n in graph.nodes for v in node_outputs(n)}
    uses: dict[int, int] = {}
    for node in graph.nodes:
        for v in node.inputs:
            uses[id(v)] = uses.get(id(v), 0) + 1
    for v in graph.outputs:
        uses[id(v)] = uses.get(id(v), 0) + 1
    names = {v.name for v in graph.inputs} | {v.name for n in graph.nodes
                                               for v in node_outputs(n)}

    def single(v: Value, op: str) -> Node | None:
        node = producers.get(id(v))
        return node if node is not None and node.op.name == op and uses.get(id(v)) == 1 \
            else None

    nodes: list[Node] = []
    for node in graph.nodes:
        if node.op.name != "sum" or node.attrs.get("axis") is not None or node.out.shape != () or \
                node.out.dtype.kind != "f":
            nodes.append(node)
            continue
        neg = single(node.inputs[0], "neg")
        inner = single(neg.inputs[0] if neg else node.inputs[0], "sum")
        mul = single(inner.inputs[0], "mul") if inner is not None else None
        if mul is None or any(v.shape != mul.out.shape or v.dtype != node.out.dtype
                              for v in (*mul.inputs, mul.out, inner.out)[:3]) or \
                inner.out.dtype != node.out.dtype:
            nodes.append(node)
            continue
        flats = []
        for v in mul.inputs:
            flat = Value(unique_name(f"{v.name}_flat", names), (math.prod(v.shape),), v.dtype)
            nodes.append(Node(get_op("reshape"), (v,), {"shape": (math.prod(v.shape),)}, out=flat,
                              src=node.src, tag=node.tag))
            flats.append(flat)
        if neg is None:
            nodes.append(Node(get_op("matmul"), tuple(flats), {}, out=node.out, src=node.src,
                              tag=node.tag))
        else:
            total = Value(unique_name(f"{node.out.name}_dot", names), (), node.out.dtype)
            nodes.append(Node(get_op("matmul"), tuple(flats), {}, out=total, src=node.src,
                              tag=node.tag))
            zero = Value(unique_name(f"{node.out.name}_zero", names), (), node.out.dtype)
            nodes.append(Node(CONSTANT, (), {"value": np.zeros((), node.out.dtype)}, out=zero,
                              tag=node.tag))
            # 0 - total, not -total: an exact zero total stays +0.0, as eager's sums give it
            nodes.append(Node(get_op("sub"), (zero, total), {}, out=node.out, src=node.src,
                              tag=node.tag))
    return graph.rebuilt(nodes)
