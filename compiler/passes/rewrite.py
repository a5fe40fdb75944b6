"""Shared helper of the passes: rebuild a graph with some values replaced by others."""

from __future__ import annotations

from ...ir.graph import FusedNode, Graph, Node, Value


def substitute(graph: Graph, nodes: list[Node], mapping: dict[int, Value]) -> Graph:
    """A new graph over ``nodes`` where every operand and output ``v`` becomes
    ``mapping[id(v)]`` (followed transitively); nodes whose operands change are copied."""

    def resolve(v: Value) -> Value:
        while id(v) in mapping:
            v = mapping[id(v)]
        return v

    out_nodes = []
    for node in nodes:
        inputs = tuple(resolve(v) for v in node.inputs)
        if all(a is b for a, b in zip(inputs, node.inputs, strict=True)):
            out_nodes.append(node)
        elif isinstance(node, FusedNode):
            out_nodes.append(FusedNode(inputs, node.body, node.outs, node.tag))
        else:
            out_nodes.append(Node(node.op, inputs, node.attrs, out=node.out, src=node.src,
                                  tag=node.tag))
    return graph.rebuilt(out_nodes, [resolve(v) for v in graph.outputs])
