"""A compiled variant's calling convention (its ``StepTrace``) as a ``StandaloneStep``, written
out by ``compiler.standalone`` (``CompiledFunction.export``).

Graph inputs read from the call's arguments become the parameters of the standalone ``step``
(example values: the example arguments given, else zeros). Every other input (parameters,
buffers, optimizer state, learning rates, generator states, captured arrays, gradients read)
is a state array keyed by the name the trace gave its object (``model.fc1.weight``; a
gradient: ``model.fc1.weight.grad``), saved with its value now.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..compiler.pipeline import CompiledGraph
from ..compiler.standalone import (
    Returned,
    ReturnedContainer,
    StandaloneInput,
    StandaloneStep,
    write_standalone,
)
from ..errors import CompileError
from ..ir.graph import Value, unique_name
from . import pytree
from .tensor import array_of
from .tracing import Result, Source, StepTrace


class _Exporter:
    def __init__(self, step: StepTrace, forward: CompiledGraph, borrowed: set[int],
                 leaves: list | None) -> None:
        self.step, self.forward, self.borrowed, self.leaves = step, forward, borrowed, leaves
        self.inputs: list[StandaloneInput] = []
        self.extra: list[StandaloneInput] = []
        # each source's name: its graph input's (unique, as ``fast.ir()`` prints it), else its
        # trace name made unique
        self.names: dict[int, str] = {
            inp.source: value.name for inp, value in zip(step.inputs, forward.graph.inputs,
                                                         strict=True) if inp.part == "data"}
        self._used = set(self.names.values())

    def name_of(self, source: int) -> str:
        name = self.names.get(source)
        if name is None:
            name = unique_name(self.step.sources[source].name, self._used)
            self.names[source] = name
        return name

    def _leaf(self, src: Source) -> Any:
        if self.leaves is None:
            return None
        if src.index >= len(self.leaves):
            raise CompileError(f"export: the example arguments have {len(self.leaves)} leaves; "
                               f"the latest variant reads leaf {src.index} ({src.name})")
        return self.leaves[src.index]

    def _example(self, src: Source, value: Value) -> np.ndarray:
        leaf = self._leaf(src)
        if leaf is None and self.leaves is None:
            return np.zeros(value.shape, value.dtype)
        array = array_of(leaf)
        if array is None or array.shape != value.shape or array.dtype != value.dtype:
            got = f"{array.dtype}{list(array.shape)}" if array is not None else \
                type(leaf).__name__
            raise CompileError(f"export: the example argument {src.name} is {got}; the latest "
                               f"variant was compiled for {value.dtype}{list(value.shape)}")
        return np.array(array, copy=True)

    def _owner(self, src: Source) -> Any:
        return src.obj if src.obj is not None else self._leaf(src)

    def _grad(self, src: Source, shape: tuple, dtype: np.dtype) -> np.ndarray:
        owner = self._owner(src)
        grad = getattr(owner, "_grad", None)
        if grad is None or grad._data.shape != shape:
            return np.zeros(shape, dtype)
        return np.array(grad._data, dtype=dtype, copy=True)

    def collect_inputs(self) -> None:
        graph = self.forward.graph
        for j, inp in enumerate(self.step.inputs):
            src, value = self.step.sources[inp.source], graph.inputs[j]
            name = self.name_of(inp.source)
            if inp.part == "grad":
                grad = self._grad(src, value.shape, value.dtype)
                self.inputs.append(StandaloneInput(name + ".grad", "state", grad))
            elif src.obj is None:
                self.inputs.append(StandaloneInput(name, "argument", self._example(src, value)))
            else:
                self.inputs.append(StandaloneInput(name, "state",
                                                   np.array(array_of(src.obj), copy=True)))
        keys = [inp.name for inp in self.inputs if inp.kind == "state"]
        if len(set(keys)) != len(keys):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            raise CompileError(f"export: two state arrays share the names {twice}")

    def _known(self, name: str, kind: str) -> bool:
        grads = {self.name_of(s) + ".grad" for s, _, _ in self.step.grad_writes}
        return any(i.name == name and i.kind == kind for i in [*self.inputs, *self.extra]) or \
            kind == "state" and name in grads

    def _held(self, name: str, kind: str, array: np.ndarray | None) -> None:
        """An argument or state array returned as it is but read by no op."""
        if self._known(name, kind):
            return
        if array is None:
            raise CompileError(f"export: the latest variant returns {name} as it is; pass "
                               f"example arguments (fast.export(path, *args)) so its shape "
                               f"and dtype are known")
        self.extra.append(StandaloneInput(name, kind, np.array(array, copy=True)))

    def returned(self, r: Result) -> Returned:
        if r.kind == "value":
            return Returned("value", value=r.value)
        if r.kind in ("tensor", "view"):
            return Returned("output", r.index, copy=r.kind == "tensor" and r.index in
                            self.borrowed)
        src = self.step.sources[r.source]
        if r.kind == "grad":
            owner = self._owner(src)
            grad = getattr(owner, "_grad", None)
            name = self.name_of(r.source) + ".grad"
            self._held(name, "state", None if grad is None else grad._data)
            return Returned("state", name=name)
        kind = "argument" if src.obj is None else "state"
        self._held(self.name_of(r.source), kind, array_of(self._owner(src)))
        return Returned(kind, name=self.name_of(r.source))

    def tree(self, structure: Any, results: Any) -> Returned | ReturnedContainer:
        """The results in the returned structure (named tuples as tuples, other mappings
        and dataclasses as dicts)."""
        if structure is None:
            return self.returned(next(results))
        (kind, meta), children = structure
        items = tuple(self.tree(c, results) for c in children)
        if kind is list:
            return ReturnedContainer("list", items)
        if issubclass(kind, tuple):
            return ReturnedContainer("tuple", items)
        return ReturnedContainer("dict", items, tuple(meta))


def export_step(path: str | os.PathLike, step: StepTrace, forward: CompiledGraph,
                borrowed: set[int], example: tuple[tuple, dict] | None = None) -> Path:
    """Write the variant traced as ``step`` (lowered as ``forward``; ``borrowed``: outputs
    that must be copied when returned) as a standalone module at ``path``, with example
    arguments ``(args, kwargs)`` (zeros when None)."""
    leaves = pytree.key_of(*example)[1] if example is not None else None
    ex = _Exporter(step, forward, borrowed, leaves)
    ex.collect_inputs()
    returns = ex.tree(step.structure, iter(step.results))
    grad_writes = [(ex.name_of(s) + ".grad", k, k is not None and k in borrowed)
                   for s, k, _ in step.grad_writes]
    spec = StandaloneStep(step.graph.name, forward.program, forward.graph, ex.inputs,
                          list(step.graph.updates), grad_writes, returns, ex.extra,
                          training=step.has_backward or bool(step.graph.updates))
    return write_standalone(path, spec)
