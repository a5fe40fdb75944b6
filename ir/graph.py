"""Graph types: ``Value`` (a typed name), ``Node`` (one op application) and ``Graph``.

The eager tape and traced functions share these types: each eager call records a ``Node`` whose
``inputs`` are the tensors it read and whose ``value`` is the array it computed; a standalone
``Graph`` holds ``Value`` objects instead of tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .registry import OpDef

_SHORT_DTYPES = {
    "float16": "f16", "float32": "f32", "float64": "f64", "int8": "i8", "int16": "i16",
    "int32": "i32", "int64": "i64", "uint8": "u8", "bool": "bool",
}


def type_str(shape: tuple[int, ...], dtype: np.dtype) -> str:
    """``f32[32,64]``: the printed type of a value."""
    name = np.dtype(dtype).name
    return f"{_SHORT_DTYPES.get(name, name)}[{','.join(str(d) for d in shape)}]"


class Value:
    """A named, typed value of a graph (an input or a node's output)."""

    __slots__ = ("name", "shape", "dtype")

    def __init__(self, name: str, shape: tuple[int, ...], dtype: Any) -> None:
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"{self.name}: {type_str(self.shape, self.dtype)}"


class Node:
    """One application of an op.

    ``inputs`` are values (graph ``Value`` objects, or tensors on the eager tape); ``out`` is the
    output ``Value`` in a standalone graph; ``value`` is the computed array on the eager tape;
    ``saved`` holds ``(version counter, version)`` pairs of what the VJP will read; ``tape`` is
    the eager tape that recorded the node; ``src`` the user's ``file:line`` when known.
    """

    __slots__ = ("op", "inputs", "attrs", "out", "value", "saved", "tape", "src", "__weakref__")

    def __init__(self, op: OpDef, inputs: tuple, attrs: dict, out: Value | None = None,
                 value: np.ndarray | None = None, saved: tuple = (), tape: Any = None,
                 src: str | None = None) -> None:
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.out = out
        self.value = value
        self.saved = saved
        self.tape = tape
        self.src = src

    def __repr__(self) -> str:
        return f"<node {self.op.name}>"


def format_attr(value: Any) -> str:
    """Readable text of an attribute value (slices, arrays, dtypes, tuples)."""
    if isinstance(value, slice):
        parts = ["" if p is None else str(p) for p in (value.start, value.stop, value.step)]
        return ":".join(parts[:2] if value.step is None else parts)
    if isinstance(value, np.ndarray):
        return f"array{list(value.shape)}" if value.size > 8 else repr(value.tolist())
    if isinstance(value, np.dtype):
        return value.name
    if value is Ellipsis:
        return "..."
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


@dataclass
class Graph:
    """A standalone graph: typed inputs, nodes in topological order, outputs."""

    name: str
    inputs: list[Value] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)

    def __str__(self) -> str:
        args = ", ".join(f"{v.name}: {type_str(v.shape, v.dtype)}" for v in self.inputs)
        rets = ", ".join(type_str(v.shape, v.dtype) for v in self.outputs)
        lines = [f"graph {self.name}({args}) -> {rets}"]
        for node in self.nodes:
            operands = ", ".join(v.name for v in node.inputs)
            attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
            rhs = " ".join(p for p in (node.op.name, operands) if p)
            if attrs:
                rhs += f" [{attrs}]" if operands else f" {attrs}"
            line = f"  {node.out.name}: {type_str(node.out.shape, node.out.dtype)} = {rhs}"
            if node.src:
                line += f"  # {node.src}"
            lines.append(line)
        lines.append("  return " + ", ".join(v.name for v in self.outputs))
        return "\n".join(lines)
