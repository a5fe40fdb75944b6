"""Symbolic values: run op methods (and so VJP rules) to emit IR nodes instead of computing."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..ir.graph import Graph, Node, Value
from ..ir.methods import OpMethods
from ..ir.ops.sources import CONSTANT
from ..ir.registry import OpDef


class Emitter:
    """Appends nodes to ``graph`` with fresh readable names, a tag and a source line."""

    def __init__(self, graph: Graph, tag: str = "") -> None:
        self.graph = graph
        self.tag = tag
        self.src: str | None = None
        self.used = {v.name for v in graph.inputs}
        for node in graph.nodes:
            self.used.add(node.out.name)
        self.count = len(graph.nodes)

    def fresh(self, base: str) -> str:
        base = re.sub(r"_\d+$", "", base)
        while f"{base}_{self.count}" in self.used:
            self.count += 1
        name = f"{base}_{self.count}"
        self.count += 1
        self.used.add(name)
        return name

    def emit(self, op: OpDef, inputs: tuple[Value, ...], attrs: dict) -> Value:
        shape, dtype = op.infer(*inputs, **attrs)
        out = Value(self.fresh(op.name), shape, dtype)
        self.graph.nodes.append(Node(op, inputs, attrs, out=out, src=self.src, tag=self.tag))
        return out

    def constant(self, array: np.ndarray) -> Value:
        return self.emit(CONSTANT, (), {"value": np.asarray(array)})


class Sym(OpMethods):
    """A graph value with the op API: each method call emits a node."""

    __slots__ = ("value", "emitter")

    def __init__(self, value: Value, emitter: Emitter) -> None:
        self.value = value
        self.emitter = emitter

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    def _apply(self, op: OpDef, inputs: tuple, attrs: dict) -> Sym:
        return Sym(self.emitter.emit(op, tuple(i.value for i in inputs), attrs), self.emitter)

    def _coerce(self, value: Any) -> Sym:
        if isinstance(value, Sym):
            return value
        if isinstance(value, bool | int | float):
            array = np.asarray(value, dtype=np.result_type(np.empty(0, self.dtype), value))
        else:
            array = np.asarray(value)
        return Sym(self.emitter.constant(array), self.emitter)
