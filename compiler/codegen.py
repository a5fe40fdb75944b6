"""Render a planned graph as a plain Python function of numpy calls (Jinja templates).

Names in the source are generated here (``v_relu_2``, ``buf3``, ``c0``), never pasted from
user strings; comments carry names and source lines through ``comment()``, which keeps only
printable characters on one line. Attribute values become Python literals only when they are
numbers, booleans, None, slices or tuples of those; anything else is bound as a constant.
"""

from __future__ import annotations

import functools
import keyword
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from ..ir.graph import Graph, Node, short_src
from ..ir.ops.sources import CONSTANT
from ..ir.registry import Operand
from .buffers import BufferPlan, plan_buffers

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                          undefined=jinja2.StrictUndefined, autoescape=False)

#: numpy names the op templates may call; each is bound once as a local of ``build``
NUMPY_NAMES = ("add", "subtract", "multiply", "true_divide", "power", "maximum", "minimum",
               "negative", "exp", "log", "sqrt", "absolute", "sign", "tanh", "logaddexp",
               "greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "where",
               "clip", "mean", "broadcast_to", "concatenate", "stack", "dot", "matmul")


@functools.lru_cache(maxsize=256)
def _template(source: str) -> jinja2.Template:
    """An op's template, compiled once."""
    return _ENV.from_string(source)


def comment(text: str | None) -> str:
    """``text`` made safe for a one-line Python comment."""
    text = (text or "")[:160]
    return text if text.isprintable() else "".join(ch if ch.isprintable() else "?"
                                                   for ch in text)


def identifier(name: str) -> str:
    """A Python identifier derived from a value name (``model.fc1.weight`` ->
    ``v_model_fc1_weight``)."""
    ident = "v_" + re.sub(r"\W", "_", name, flags=re.ASCII)[:40]
    return ident + "_" if keyword.iskeyword(ident) else ident


@dataclass
class Program:
    """Generated source and what ``build`` needs to run it."""

    source: str
    fn_name: str
    buffers: list[tuple[tuple[int, ...], np.dtype]]
    consts: list[Any]
    kernels: dict[str, Any]
    line_map: dict[int, tuple[str, str]] = field(default_factory=dict)
    plan: BufferPlan | None = None


class _Renderer:
    def __init__(self, graph: Graph, plan: BufferPlan) -> None:
        self.graph, self.plan = graph, plan
        self.consts: list[Any] = []
        self.kernels: dict[str, Any] = {}
        self.names: dict[int, str] = {}
        self.taken: set[str] = set(NUMPY_NAMES) | {"np", "buffers", "consts", "kernels"}
        self.bindings: list[tuple[str, str]] = [
            (f"buf{i}", f"buffers[{i}]") for i in range(len(plan.buffers))]
        self.taken |= {f"buf{i}" for i in range(len(plan.buffers))}

    def name(self, value: Any) -> str:
        if id(value) not in self.names:
            base = identifier(value.name)
            ident, k = base, 1
            while ident in self.taken:
                ident, k = f"{base}_{k}", k + 1
            self.taken.add(ident)
            self.names[id(value)] = ident
        return self.names[id(value)]

    def const(self, value: Any) -> str:
        for i, c in enumerate(self.consts):
            if c is value:
                return f"c{i}"
        self.consts.append(value)
        name = f"c{len(self.consts) - 1}"
        self.bindings.append((name, f"consts[{len(self.consts) - 1}]"))
        return name

    def literal(self, value: Any, x: list[str]) -> str:
        """Python source for an attribute value (or the name of a bound constant); an
        ``Operand`` is the name of that input (``x``)."""
        if type(value) is Operand:
            return x[value.position]
        if value is None or isinstance(value, bool):
            return repr(value)
        if isinstance(value, int | np.integer):
            return repr(int(value))
        if isinstance(value, float | np.floating) and math.isfinite(value):
            return repr(float(value))
        if value is Ellipsis:
            return "Ellipsis"
        if isinstance(value, slice):
            return "slice({}, {}, {})".format(*(self.literal(p, x) for p in (
                value.start, value.stop, value.step)))
        if isinstance(value, tuple):
            inner = ", ".join(self.literal(v, x) for v in value)
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        return self.const(value)

    def statement(self, node: Node) -> str:
        x = [self.name(v) for v in node.inputs]
        out = self.plan.buffer_of.get(id(node.out))
        if isinstance(out, tuple):  # computed straight into an input's array
            out_code = self.name(self.graph.inputs[out[1]])
        else:
            out_code = f"buf{out}" if out is not None else "None"
        target = self.name(node.out)
        if node.op.template:
            attrs = {k: self.literal(v, x) for k, v in node.attrs.items()}
            expr = _template(node.op.template).render(
                x=x, out=out_code, a=attrs, ndims=[len(v.shape) for v in node.inputs])
        else:
            kernel = f"k_{node.op.name}"
            if node.op.name not in self.kernels:
                self.kernels[node.op.name] = node.op.impl
                self.bindings.append((kernel, f"kernels[{node.op.name!r}]"))
            args = x + [f"{k}={self.literal(v, x)}" for k, v in node.attrs.items()]
            expr = f"{kernel}({', '.join(args)})"
        return f"{target} = {expr}"


def render(graph: Graph, plan: BufferPlan | None = None) -> Program:
    """Generate the Python source of ``graph`` (see the module docstring)."""
    plan = plan or plan_buffers(graph)
    r = _Renderer(graph, plan)
    params = [r.name(v) for v in graph.inputs]
    body, last_group = [], None
    for node in plan.schedule:
        if node.op is CONSTANT:
            r.names[id(node.out)] = r.const(node.attrs["value"])
            continue
        group = plan.group_of.get(id(node))
        body.append({"code": r.statement(node),
                     "group_start": group if group is not None and group != last_group else None,
                     "comment": comment(f"{node.out.name}"
                                        + (f" <- {short_src(node.src)}" if node.src else "")),
                     "node": node})
        last_group = group
    # ufuncs give numpy scalars for 0-d results: only those are wrapped back into arrays
    returns = [f"np.asarray({r.name(v)})" if not v.shape else r.name(v) for v in graph.outputs]
    called = set(re.findall(r"\b([a-z_]+)(?:\.reduce)?\(", "\n".join(b["code"] for b in body)))
    r.bindings[:0] = [(n, f"np.{n}") for n in NUMPY_NAMES if n in called]
    fn_name = "fn_" + re.sub(r"\W", "_", graph.name, flags=re.ASCII)[:40]
    source = _ENV.get_template("module.py.j2").render(
        graph_name=comment(graph.name), n_ops=len(body), n_buffers=len(plan.buffers),
        bindings=r.bindings, fn_name=fn_name, params=params, body=body, returns=returns)
    line_map = {}
    pending = iter(body)  # statements appear in the source in body order
    item = next(pending, None)
    for line_no, text in enumerate(source.splitlines(), start=1):
        if item is not None and text.strip().startswith(item["code"]):
            line_map[line_no] = (item["node"].out.name, item["node"].src or "")
            item = next(pending, None)
    return Program(source, fn_name, plan.buffers, r.consts, r.kernels, line_map, plan)
