"""Element-wise fusion: runs of element-wise nodes of one shape become one fused group.

A group is a contiguous run of the (topologically ordered) node list, so it is convex: no
path leaves the group and comes back. Matmuls, views, reductions and other ops cut groups.
The group's outputs are the values used after it or returned; there may be several.
"""

from __future__ import annotations

from ...ir.graph import FusedNode, Graph, Node, Value


def _fusible(node: Node) -> bool:
    return node.op.kind == "elementwise" and node.op.name != "constant"


def fuse(graph: Graph, min_size: int = 2) -> Graph:
    """Group runs of at least ``min_size`` same-shape element-wise nodes."""
    runs: list[list[Node]] = []
    for node in graph.nodes:
        if _fusible(node) and runs and _fusible(runs[-1][-1]) and \
                runs[-1][-1].out.shape == node.out.shape:
            runs[-1].append(node)
        else:
            runs.append([node])
    used_later: dict[int, int] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            used_later[id(v)] = i
    returned = {id(v) for v in graph.outputs}
    nodes: list[Node] = []
    position = 0
    for run in runs:
        end = position + len(run)
        position = end
        if len(run) < min_size or not _fusible(run[0]):
            nodes.extend(run)
            continue
        inside = {id(n.out) for n in run}
        inputs: list[Value] = []
        for n in run:
            for v in n.inputs:
                if id(v) not in inside and all(v is not i for i in inputs):
                    inputs.append(v)
        outs = [n.out for n in run
                if id(n.out) in returned or used_later.get(id(n.out), -1) >= end]
        nodes.append(FusedNode(tuple(inputs), run, outs, tag=run[0].tag))
    return graph.rebuilt(nodes)
