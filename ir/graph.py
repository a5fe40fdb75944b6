"""Graph types: ``Value`` (a typed name), ``Node`` (one op application) and ``Graph``.

The eager tape and traced functions share these types: each eager call records a ``Node`` whose
``inputs`` are the tensors it read and whose ``value`` is the array it computed; a standalone
``Graph`` holds ``Value`` objects instead of tensors.
"""

from __future__ import annotations

import os
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

    __slots__ = ("op", "inputs", "attrs", "out", "value", "saved", "tape", "src", "tag",
                 "__weakref__")

    def __init__(self, op: OpDef, inputs: tuple, attrs: dict, out: Value | None = None,
                 value: np.ndarray | None = None, saved: tuple = (), tape: Any = None,
                 src: str | None = None, tag: str = "") -> None:
        self.tag = tag
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


def run_nodes(nodes: list[Node], env: dict[int, np.ndarray]) -> None:
    """Run ``nodes`` with the registry's kernels, reading and writing ``env`` (id -> array)."""
    for node in nodes:
        result = node.op.impl(*[env[id(v)] for v in node.inputs], **node.attrs)
        if isinstance(node, FusedNode):
            env.update((id(v), r) for v, r in zip(node.outs, result, strict=True))
        else:
            env[id(node.out)] = np.asarray(result)


def _fused_impl(*arrays: np.ndarray, group: FusedNode) -> tuple[np.ndarray, ...]:
    env = {id(v): a for v, a in zip(group.inputs, arrays, strict=True)}
    run_nodes(group.body, env)
    return tuple(env[id(v)] for v in group.outs)


#: the pseudo-op of fused groups (not in the registry: a group's body is its definition)
FUSED = OpDef(name="fused", kind="elementwise", impl=_fused_impl,
              infer=lambda *values, group: (group.outs[0].shape, group.outs[0].dtype),
              doc="a fused element-wise group")


class FusedNode(Node):
    """Element-wise nodes of one shape computed together; ``outs`` are the values used outside
    the group (one or more). Printed as one node with its body indented under it."""

    __slots__ = ("body", "outs")

    def __init__(self, inputs: tuple, body: list[Node], outs: list[Value], tag: str = "") -> None:
        super().__init__(FUSED, inputs, {}, out=outs[0], tag=tag)
        self.body = body
        self.outs = outs
        self.attrs = {"group": self}


def node_outputs(node: Node) -> list[Value]:
    """The values a node defines: its ``out``, or a fused group's ``outs``."""
    return node.outs if isinstance(node, FusedNode) else [node.out]


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


def unique_name(base: str, used: set[str]) -> str:
    """``base``, else ``base_1``, ``base_2``, ...: the first name not in ``used`` (added to it)."""
    name, k = base, 1
    while name in used:
        name, k = f"{base}_{k}", k + 1
    used.add(name)
    return name


def short_src(src: str | None) -> str:
    """``file.py:12: code`` from a full ``/path/to/file.py:12: code`` location."""
    if not src:
        return ""
    where, _, code = src.partition(": ")
    path, _, line = where.rpartition(":")
    short = f"{os.path.basename(path)}:{line}" if path else where
    return f"{short}: {code}" if code else short


@dataclass
class Graph:
    """A standalone graph: typed inputs, nodes in topological order, outputs.

    ``str(graph)`` prints it one op per line; ``to_dot``, ``to_json``/``from_json`` and
    ``to_networkx`` export it; ``verify`` checks it; ``evaluate`` runs it with the registry's
    numpy kernels. ``meta`` holds free-form facts (e.g. how outputs were nested).
    """

    name: str
    inputs: list[Value] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    #: in-place updates: ``(input position, output position)``: after a call, that input's
    #: array holds that output's values (a parameter update, a buffer written in place)
    updates: list[tuple[int, int]] = field(default_factory=list)

    def rebuilt(self, nodes: list[Node], outputs: list[Value] | None = None) -> Graph:
        """A new graph with the same name, inputs, meta and updates, and these nodes (and
        outputs); what every pass returns."""
        return Graph(self.name, list(self.inputs), nodes,
                     list(self.outputs if outputs is None else outputs), dict(self.meta),
                     list(self.updates))

    def signature(self) -> str:
        args = ", ".join(f"{v.name}: {type_str(v.shape, v.dtype)}" for v in self.inputs)
        rets = ", ".join(type_str(v.shape, v.dtype) for v in self.outputs)
        return f"graph {self.name}({args}) -> {rets}"

    def node_line(self, node: Node) -> str:
        """``name: type = op operands [attrs]`` for one node, without the source comment."""
        operands = ", ".join(v.name for v in node.inputs)
        if isinstance(node, FusedNode):
            outs = ", ".join(f"{v.name}: {type_str(v.shape, v.dtype)}" for v in node.outs)
            return f"{outs} = fused[{len(node.body)} ops] {operands}"
        attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
        rhs = " ".join(p for p in (node.op.name, operands) if p)
        if attrs:
            rhs += f" [{attrs}]" if operands else f" {attrs}"
        return f"{node.out.name}: {type_str(node.out.shape, node.out.dtype)} = {rhs}"

    def __str__(self) -> str:
        rows: list[tuple[str, str]] = []
        show_tags = any(n.tag and n.tag != "fwd" for n in self.nodes)
        for node in self.nodes:
            mark = f"[{node.tag}] " if node.tag and show_tags else ""
            rows.append((f"  {mark}{self.node_line(node)}", short_src(node.src)))
            if isinstance(node, FusedNode):
                rows.extend((f"    | {self.node_line(inner)}", short_src(inner.src))
                            for inner in node.body)
        width = max((len(line) for line, _ in rows), default=0)
        lines = [self.signature()]
        lines.extend(f"{line:<{width}}  # {src}" if src else line for line, src in rows)
        lines.extend(f"  update {self.inputs[i].name} <- {self.outputs[k].name}"
                     for i, k in self.updates)
        lines.append("  return " + ", ".join(v.name for v in self.outputs))
        return "\n".join(lines)

    def verify(self) -> Graph:
        """Check topological order, definitions and every node's shape/dtype rule."""
        from .verify import verify

        verify(self)
        return self

    def evaluate(self, *inputs: Any) -> list[np.ndarray]:
        """Run the graph on numpy inputs with each op's kernel (the reference interpreter)."""
        if len(inputs) != len(self.inputs):
            raise TypeError(f"{self.name}: expected {len(self.inputs)} inputs, got {len(inputs)}")
        env: dict[int, np.ndarray] = {}
        for value, array in zip(self.inputs, inputs, strict=True):
            array = np.asarray(array)
            if array.shape != value.shape or array.dtype != value.dtype:
                raise TypeError(f"{self.name}: input {value.name} must be "
                                f"{type_str(value.shape, value.dtype)}, got "
                                f"{type_str(array.shape, array.dtype)}")
            env[id(value)] = array
        run_nodes(self.nodes, env)
        return [env[id(v)] for v in self.outputs]

    def to_json(self) -> str:
        """The graph as JSON (schema in ``ir/serialize.py``)."""
        from .serialize import to_json

        return to_json(self)

    @staticmethod
    def from_json(text: str) -> Graph:
        """Load a graph written by ``to_json``; never executes or imports anything."""
        from .serialize import from_json

        return from_json(text)

    def to_dot(self) -> str:
        """Graphviz DOT text: inputs, ops, outputs; edges labelled with shapes."""
        from .export import to_dot

        return to_dot(self)

    def to_networkx(self) -> Any:
        """A ``networkx.MultiDiGraph``: one node per graph input and op, an edge per operand."""
        from .export import to_networkx

        return to_networkx(self)

    def to_onnx(self, path: Any = None, **options: Any) -> Any:
        """An ``onnx.ModelProto`` of this graph, written to ``path`` when given (see
        ``ir/onnx_export.py``; options: ``opset``, ``initializers``)."""
        from .onnx_export import to_onnx

        return to_onnx(self, path, **options)

    def _repr_svg_(self) -> str | None:
        """Jupyter's picture of the graph (``ir/display.py``); None without a renderer."""
        from .display import repr_svg

        return repr_svg(self.name, [("", self)])

    def _repr_html_(self) -> str | None:
        """Jupyter's text fallback: the printed graph, when no renderer is installed."""
        from .display import repr_html

        return repr_html(self.name, [("", self)])
