"""Scheduling collectives: each all-reduce as early as its operands allow.

A traced data-parallel step records the whole backward before the all-reduces of the gradient
buckets, so every all-reduce would wait until the backward ends. This pass moves each
collective (an op with ``effects``), with the shape-only nodes that feed nothing else (the
reshapes and the concat that flatten a bucket's gradients), up to just after the last node it
depends on: a bucket's all-reduce then follows its last gradient. Collectives keep their
relative order (every rank must enter them in the same order, as MPI requires), and so does
every other node.
"""

from __future__ import annotations

from ...ir.graph import Graph, Node, node_outputs

#: cheap ops that may move with the collective they feed
_FEEDERS = frozenset({"reshape", "concat", "constant"})


def _movable(graph: Graph) -> set[int]:
    """Ids of the collectives and of the feeder nodes whose values only movable nodes use."""
    users: dict[int, list[Node]] = {}
    for node in graph.nodes:
        for v in node.inputs:
            users.setdefault(id(v), []).append(node)
    returned = {id(v) for v in graph.outputs}
    movable: set[int] = set()
    for node in reversed(graph.nodes):
        if node.op.effects:
            movable.add(id(node))
        elif node.op.name in _FEEDERS and id(node.out) not in returned:
            readers = users.get(id(node.out), [])
            if readers and all(id(r) in movable for r in readers):
                movable.add(id(node))
    return movable


def schedule_collectives(graph: Graph) -> Graph:
    """Move collectives (and their feeders) up to just after their last operand."""
    movable = _movable(graph)
    if not movable:
        return graph
    defined = {id(v) for v in graph.inputs}
    order: list[Node] = []
    pending = [n for n in graph.nodes if id(n) in movable]

    def emit(node: Node) -> None:
        order.append(node)
        defined.update(id(v) for v in node_outputs(node))

    def flush() -> None:
        nonlocal pending
        waiting, blocked = [], False
        for node in pending:
            collective = node.op.effects
            if not (collective and blocked) and all(id(v) in defined for v in node.inputs):
                emit(node)
            else:
                waiting.append(node)
                blocked |= collective
        pending = waiting

    flush()
    for node in graph.nodes:
        if id(node) not in movable:
            emit(node)
            flush()
    return graph.rebuilt(order)
