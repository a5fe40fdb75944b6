"""``verify(graph)``: topological order, definitions and shape/dtype rules."""

from __future__ import annotations

import numpy as np

from ..errors import GraphError
from .graph import FusedNode, Graph, Node, type_str


class VerifyError(GraphError):
    """A graph that breaks an IR invariant."""


def verify(graph: Graph) -> None:
    """Raise ``VerifyError`` naming the first node that breaks an invariant."""
    defined: set[int] = set()
    names: set[str] = set()
    for value in graph.inputs:
        if value.name in names:
            raise VerifyError(f"{graph.name}: input name {value.name!r} is used twice")
        names.add(value.name)
        defined.add(id(value))
    for i, node in enumerate(graph.nodes):
        where = f"{graph.name}: node {i} ({node.op.name} -> {node.out.name})"
        for v in node.inputs:
            if id(v) not in defined:
                raise VerifyError(f"{where}: operand {v.name!r} is used before it is defined")
        if isinstance(node, FusedNode):
            _verify_group(node, where, names, defined)
            continue
        _verify_node(node, where)
        if node.out.name in names:
            raise VerifyError(f"{where}: value name {node.out.name!r} is defined twice")
        names.add(node.out.name)
        defined.add(id(node.out))
    for v in graph.outputs:
        if id(v) not in defined:
            raise VerifyError(f"{graph.name}: output {v.name!r} is not defined")


def _verify_group(group: FusedNode, where: str, names: set[str], defined: set[int]) -> None:
    inner = set(defined)
    for node in group.body:
        if node.op.kind != "elementwise" or node.out.shape != group.outs[0].shape:
            raise VerifyError(f"{where}: {node.op.name} -> {node.out.name} cannot be fused")
        for v in node.inputs:
            if id(v) not in inner:
                raise VerifyError(f"{where}: operand {v.name!r} is used before it is defined")
        _verify_node(node, f"{where} / {node.op.name} -> {node.out.name}")
        inner.add(id(node.out))
    for v in group.outs:
        if id(v) not in inner:
            raise VerifyError(f"{where}: group output {v.name!r} is not computed by its body")
        names.add(v.name)
        defined.add(id(v))


def _verify_node(node: Node, where: str) -> None:
    try:
        shape, dtype = node.op.infer(*node.inputs, **node.attrs)
    except (ValueError, TypeError, IndexError) as e:
        raise VerifyError(f"{where}: shape rule rejects the operands: {e}") from None
    if tuple(shape) != node.out.shape or np.dtype(dtype) != node.out.dtype:
        raise VerifyError(f"{where}: declared {type_str(node.out.shape, node.out.dtype)} "
                          f"but the op gives {type_str(shape, dtype)}")
