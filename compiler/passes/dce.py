"""Dead-code elimination: drop nodes whose values nothing uses (ops whose kernels check their
inputs and raise, such as ``one_hot``'s label range, stay: eager would have raised)."""

from __future__ import annotations

from ...ir.graph import Graph, node_outputs


def dce(graph: Graph) -> Graph:
    """Keep only the nodes the outputs depend on."""
    needed = {id(v) for v in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if node.op.checks or node.op.effects or any(id(v) in needed for v in node_outputs(node)):
            kept.append(node)
            needed.update(id(v) for v in node.inputs)
    return graph.rebuilt(kept[::-1])
