"""``verify(graph)``: topological order, definitions and shape/dtype rules."""

from __future__ import annotations

import numpy as np

from ..errors import GraphError
from .graph import Graph, type_str


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
        try:
            shape, dtype = node.op.infer(*node.inputs, **node.attrs)
        except (ValueError, TypeError, IndexError) as e:
            raise VerifyError(f"{where}: shape rule rejects the operands: {e}") from None
        if tuple(shape) != node.out.shape or np.dtype(dtype) != node.out.dtype:
            raise VerifyError(f"{where}: declared {type_str(node.out.shape, node.out.dtype)} "
                              f"but the op gives {type_str(shape, dtype)}")
        if node.out.name in names:
            raise VerifyError(f"{where}: value name {node.out.name!r} is defined twice")
        names.add(node.out.name)
        defined.add(id(node.out))
    for v in graph.outputs:
        if id(v) not in defined:
            raise VerifyError(f"{graph.name}: output {v.name!r} is not defined")
