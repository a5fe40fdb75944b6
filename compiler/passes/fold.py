"""Constant folding: evaluate nodes whose operands are all constants (small results only)."""

from __future__ import annotations

import numpy as np

from ...ir.graph import Graph, Node
from ...ir.ops.sources import CONSTANT

#: fold only results up to this many elements, so folding never bakes big arrays
MAX_FOLDED_ELEMENTS = 4096


def fold_constants(graph: Graph) -> Graph:
    """Replace nodes computable at compile time by ``constant`` nodes."""
    values: dict[int, np.ndarray] = {}
    nodes = []
    for node in graph.nodes:
        if node.op is CONSTANT:
            values[id(node.out)] = node.attrs["value"]
            nodes.append(node)
            continue
        if node.inputs and not node.op.effects and all(id(v) in values for v in node.inputs) \
                and \
                int(np.prod(node.out.shape)) <= MAX_FOLDED_ELEMENTS:
            with np.errstate(all="ignore"):
                result = np.array(node.op.impl(*[values[id(v)] for v in node.inputs],
                                               **node.attrs), dtype=node.out.dtype)
            values[id(node.out)] = result
            nodes.append(Node(CONSTANT, (), {"value": result}, out=node.out, src=node.src,
                              tag=node.tag))
        else:
            nodes.append(node)
    return graph.rebuilt(nodes)
