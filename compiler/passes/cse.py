"""Common-subexpression elimination: one node per (op, operands, attributes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir.graph import Graph, Value
from .rewrite import substitute


def attr_key(value: Any) -> Any:
    """A hashable, exact key for an attribute value (arrays by dtype, shape and bytes)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(attr_key(v) for v in value))
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, float) and value != value:
        return ("nan",)
    if isinstance(value, float) and value == 0.0:
        return ("zero", str(value))  # keep -0.0 apart from 0.0
    if isinstance(value, np.dtype):
        return ("dtype", value.str)
    return (type(value).__name__, value)


def cse(graph: Graph) -> Graph:
    """Replace each node that repeats an earlier one (same op, operands and attributes)."""
    seen: dict[Any, Value] = {}
    mapping: dict[int, Value] = {}
    kept = []
    for node in graph.nodes:
        operands = tuple(id(mapping.get(id(v), v)) for v in node.inputs)
        key = (node.op.name, operands,
               tuple((k, attr_key(v)) for k, v in sorted(node.attrs.items())))
        if node.op.effects:  # two collectives are two rendezvous, even of one value
            kept.append(node)
            continue
        try:
            hash(key)
        except TypeError:  # an attribute we cannot key: keep the node
            kept.append(node)
            continue
        if key in seen:
            mapping[id(node.out)] = seen[key]
        else:
            seen[key] = node.out
            kept.append(node)
    return substitute(graph, kept, mapping)
