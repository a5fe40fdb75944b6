"""Dead-code elimination: drop nodes whose values nothing uses."""

from __future__ import annotations

from ...ir.graph import Graph, node_outputs


def dce(graph: Graph) -> Graph:
    """Keep only the nodes the outputs depend on."""
    needed = {id(v) for v in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if any(id(v) in needed for v in node_outputs(node)):
            kept.append(node)
            needed.update(id(v) for v in node.inputs)
    return type(graph)(graph.name, list(graph.inputs), kept[::-1], list(graph.outputs),
                       dict(graph.meta))
