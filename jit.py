"""``compile(fn_or_module)``: cached, guarded compiled functions and whole training steps.

The first call for each cache key traces ``fn`` (changing no user object), derives the
backward graph symbolically where ``fn`` calls ``backward()``, lowers the graph through the
compiler and keeps the generated code; later calls with the same key run that code.

Cache key: shapes, dtypes and ``requires_grad`` of tensor arguments, shapes and dtypes of
numpy arrays, values of Python scalars, and the grad mode. Tensors reached from closures,
globals and module attributes are inputs by reference (updating a parameter, ``opt.lr`` or an
optimizer's state changes the next result without recompiling).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from weakref import ref as _weakref

import numpy as np

from .compiler.autodiff import joint, split
from .compiler.pipeline import CompiledGraph, lower
from .errors import GraphError, with_location
from .ir.graph import Graph, Node
from .ir.registry import OpDef
from .runtime.state import STATE
from .runtime.tensor import Tensor, _wrap
from .runtime.tracing import GraphBuilder, StepTrace, trace_step, unflatten

_SCALARS = (bool, int, float)


def _leaves(obj: Any, path: str, out: list[tuple[str, Any]]) -> None:
    """Flatten arguments into ``(path, leaf)``; leaves are tensors, arrays and scalars."""
    if isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            _leaves(item, f"{path}[{i}]", out)
    elif isinstance(obj, dict):
        for k, item in obj.items():
            _leaves(item, f"{path}[{k!r}]", out)
    else:
        out.append((path, obj))


_CONTAINERS = frozenset({list, tuple, dict})


def _spec(leaf: Any) -> tuple:
    """The cache-key part of one argument leaf (kept cheap: it runs on every call)."""
    kind = type(leaf)
    if kind is np.ndarray or isinstance(leaf, np.ndarray):
        return ("array", leaf.shape, leaf.dtype)
    if kind is Tensor or isinstance(leaf, Tensor):
        data = leaf._data
        return ("tensor", data.shape, data.dtype, leaf._rg)
    if isinstance(leaf, _SCALARS) or leaf is None:
        return ("scalar", kind.__name__, leaf)
    return ("object", id(leaf))


def _describe(field_name: str, spec: tuple) -> str:
    kind = spec[0]
    if kind == "tensor":
        return f"{field_name}: tensor {spec[2].str}{list(spec[1])} requires_grad={spec[3]}"
    if kind == "array":
        return f"{field_name}: array {spec[2].str}{list(spec[1])}"
    if kind == "scalar":
        return f"{field_name}: {spec[1]} {spec[2]!r}"
    return f"{field_name}: object #{spec[1]}"


@dataclass
class _Entry:
    """One compiled variant: how to gather inputs, the code, how to deliver results."""

    step: StepTrace
    sources: list[tuple[str, Any]]  # ("arg", position) or ("tensor", tensor)
    compiled: CompiledGraph
    backward: CompiledGraph | None = None
    wrt: list[int] = field(default_factory=list)  # graph input positions that get gradients
    n_saved: int = 0
    #: indices of the outputs that have a gradient path (and a cotangent input) backward
    cotangent_outputs: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        n = self.step.n_results
        self._writes = [(target, k) for k, target in enumerate(self.step.writes, start=n)]
        # a tensor's array object never changes (updates write into it), so captured inputs
        # are looked up once; only argument slots are filled per call
        self._template = [None if kind == "arg" else where._data for kind, where in self.sources]
        self._arg_slots = [(i, where) for i, (kind, where) in enumerate(self.sources)
                           if kind == "arg"]

    def gather(self, leaves: list[Any]) -> list[np.ndarray]:
        arrays = self._template.copy()
        for slot, position in self._arg_slots:
            value = leaves[position]
            arrays[slot] = value._data if type(value) is Tensor else value
        return arrays

    def run(self, leaves: list[Any]) -> Any:
        arrays = self.gather(leaves)
        outs = self.compiled.executable(*arrays)
        step = self.step
        n = step.n_results
        for target, k in self._writes:
            if outs[k] is not target._data:  # not already computed in place
                np.copyto(target._data, outs[k], casting="same_kind")
            target._vc[0] += 1
        for leaf, k in step.grads:
            leaf._grad = None if k is None else _wrap(outs[k], None, False)
        if self.backward is not None and STATE.grad_enabled:
            results = self._join_graph(leaves, outs[:n], outs[len(outs) - self.n_saved:])
        else:
            results = [_wrap(o, None, False) for o in outs[:n]]
        if step.structure == "tensor":
            return results[0]
        return unflatten(step.structure, iter(results))

    def _join_graph(self, leaves: list, results: tuple, saved: tuple) -> list[Tensor]:
        """Outputs that need gradients join the eager graph as nodes whose backward runs the
        compiled backward on the values the compiled forward saved."""
        inputs = tuple(self._input_tensor(i, leaves) for i in self.wrt)
        tape = STATE.tape
        outs = []
        differentiable = set(self.cotangent_outputs)
        for k, data in enumerate(results):
            if k not in differentiable:
                outs.append(_wrap(data, None, False))
                continue
            op = OpDef(name=f"compiled[{self.compiled.graph.name}]", kind="other", impl=None,
                       infer=None, vjp=self._vjp(k, results, saved), save_inputs=True)
            node = Node(op, inputs, {}, value=data, tape=tape,
                        saved=tuple((t._vc, t._vc[0]) for t in inputs))
            tape.refs.append(_weakref(node))
            out = _wrap(data, node, True)
            outs.append(out)
        return outs

    def _input_tensor(self, i: int, leaves: list) -> Tensor:
        kind, where = self.sources[i]
        return where if kind == "tensor" else leaves[where]

    def _vjp(self, k: int, results: tuple, saved: tuple) -> Callable:
        backward = self.backward

        def vjp(g: Tensor, out: Any, inputs: tuple, attrs: dict, needs: tuple) -> tuple:
            if STATE.grad_enabled:
                raise GraphError(with_location("backward(create_graph=True) through a compiled "
                                               "function is not supported"))
            cotangents = [np.zeros_like(results[j]) if j != k else
                          np.asarray(g._data, dtype=results[k].dtype)
                          for j in self.cotangent_outputs]
            grads = backward(*saved, *cotangents)
            return tuple(_wrap(np.asarray(gr), None, False) for gr in grads)

        return vjp


class CompiledFunction:
    """What ``compile`` returns: call it like the function; inspect it with ``ir()``,
    ``source()``, ``stats()`` and ``cache_info()``."""

    def __init__(self, fn: Callable, cache_limit: int = 8) -> None:
        self.fn = fn
        self.cache_limit = cache_limit
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self._entries: dict[tuple, _Entry] = {}
        self._fields: dict[tuple, list[str]] = {}
        self._last: _Entry | None = None
        self.hits = self.misses = 0
        self.miss_reasons: list[str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs or any(type(a) in _CONTAINERS for a in args):
            leaves: list[tuple[str, Any]] = []
            _leaves(args, "args", leaves)
            _leaves(kwargs, "kwargs", leaves)
            values = [leaf for _, leaf in leaves]
        else:  # the common case, kept cheap: flat positional arguments
            values = list(args)
        key = (STATE.grad_enabled, tuple([_spec(v) for v in values]))
        entry = self._entries.get(key)
        if entry is None:
            paths: list[tuple[str, Any]] = []
            _leaves(args, "args", paths)
            _leaves(kwargs, "kwargs", paths)
            entry = self._compile(key, [p for p, _ in paths], values, args, kwargs)
        else:
            self.hits += 1
        self._last = entry
        return entry.run(values)

    # --- compiling -----------------------------------------------------------------------------
    def _explain_miss(self, key: tuple, paths: list[str]) -> str:
        if not self._entries:
            return "first call"
        best, best_diffs = None, None
        for old in self._entries:
            diffs = []
            if old[0] != key[0]:
                diffs.append(f"grad mode: {old[0]} -> {key[0]}")
            if len(old[1]) != len(key[1]):
                diffs.append(f"number of arguments: {len(old[1])} -> {len(key[1])}")
            else:
                diffs += [f"{_describe(p, a)} -> {_describe(p, b).split(': ', 1)[1]}"
                          for p, a, b in zip(paths, old[1], key[1], strict=True) if a != b]
            if best_diffs is None or len(diffs) < len(best_diffs):
                best, best_diffs = old, diffs
        return "; ".join(best_diffs or ["unknown"]) if best is not None else "first call"

    def _compile(self, key: tuple, paths: list[str], values: list[Any], args: tuple,
                 kwargs: dict) -> _Entry:
        self.misses += 1
        reason = self._explain_miss(key, paths)
        self.miss_reasons.append(reason)
        if len(self._entries) >= self.cache_limit:
            warnings.warn(f"aprender.compile: {self.__name__} is compiling variant "
                          f"{len(self._entries) + 1}, past its cache limit of "
                          f"{self.cache_limit} (nothing falls back to eager); this miss: "
                          f"{reason}", RuntimeWarning, stacklevel=3)
        start = time.perf_counter()
        as_tensors = {id(v): Tensor._as_input(v) for v in values if isinstance(v, np.ndarray)}
        t_args = _replace(args, as_tensors)
        t_kwargs = _replace(kwargs, as_tensors)
        step = trace_step(self.fn, t_args, t_kwargs, _derive_backward)
        positions = {}
        for i, v in enumerate(values):
            positions[id(as_tensors.get(id(v), v))] = i
        sources = [("arg", positions[id(t)]) if id(t) in positions else ("tensor", t)
                   for t in step.input_tensors]
        graph = step.graph
        n = step.n_results
        graph.meta["persistent_outputs"] = [k for _, k in step.grads if k is not None]
        index = {id(t): j for j, t in enumerate(step.input_tensors)}
        graph.meta["write_back"] = {n + k: index[id(t)] for k, t in enumerate(step.writes)}
        wrt = [i for i, t in enumerate(step.input_tensors) if t._rg and t.dtype.kind == "f"]
        if step.has_backward or not wrt or not key[0]:
            entry = _Entry(step, sources, lower(graph))
        else:
            full = joint(graph, [graph.inputs[i] for i in wrt], seed="input")
            forward, backward = split(full)
            entry = _Entry(step, sources, lower(forward), lower(backward), wrt,
                           forward.meta["n_saved"], full.meta["cotangent_outputs"])
        entry.seconds = time.perf_counter() - start
        self._entries[key] = entry
        return entry

    # --- inspection ----------------------------------------------------------------------------
    def _entry(self) -> _Entry:
        if self._last is None:
            raise GraphError(f"{self.__name__}: nothing compiled yet; call it once first")
        return self._last

    def ir(self, stage: str | None = None) -> str:
        """The latest variant's graphs: every stage (default) or the one after ``stage``
        (``input``, ``fold_constants``, ``simplify``, ``cse``, ``dce``, ``fuse``)."""
        entry = self._entry()
        parts = []
        for label, compiled in (("forward", entry.compiled), ("backward", entry.backward)):
            if compiled is None:
                continue
            if stage is None:
                parts.append(f"## {label}\n" + "\n\n".join(map(str, compiled.stages[:-1])))
            else:
                parts.append(f"## {label} after {stage}\n{compiled.stage(stage)}")
        return "\n\n".join(parts)

    def source(self) -> str:
        """The generated Python of the latest variant (forward, then backward if any)."""
        entry = self._entry()
        return "\n\n".join(c.source for c in (entry.compiled, entry.backward) if c is not None)

    def stats(self) -> dict[str, Any]:
        """Compile time in total and per pass for the latest variant, and cache figures."""
        entry = self._entry()
        passes = {s.name: s.seconds * 1e3 for s in entry.compiled.stages[1:]}
        return {"compile_ms": entry.seconds * 1e3, "pass_ms": passes, **self.cache_info()}

    def cache_info(self) -> dict[str, Any]:
        """Hits, misses, compiles, entries, and why each miss happened."""
        return {"hits": self.hits, "misses": self.misses, "compiles": len(self._entries),
                "limit": self.cache_limit, "miss_reasons": list(self.miss_reasons)}


def _replace(obj: Any, mapping: dict[int, Any]) -> Any:
    if isinstance(obj, list | tuple):
        return type(obj)(_replace(v, mapping) for v in obj)
    if isinstance(obj, dict):
        return {k: _replace(v, mapping) for k, v in obj.items()}
    return mapping.get(id(obj), obj)


def _derive_backward(builder: GraphBuilder, root: Tensor, pairs: list) -> None:
    """At a recorded ``backward()``: append the symbolic backward of everything traced so far
    and map each leaf's gradient placeholder to its gradient value."""
    leaves = [leaf for leaf, _ in pairs]
    wrt = [builder.value_of(leaf) for leaf in leaves]
    forward = Graph(builder.graph.name, builder.graph.inputs, builder.graph.nodes,
                    [builder.value_of(root)])
    full = joint(forward, wrt)
    builder.graph.nodes = full.nodes
    builder.graph.meta["show_tags"] = True
    builder.used |= {n.out.name for n in full.nodes}
    for (_, placeholder), grad in zip(pairs, full.outputs[1:], strict=True):
        builder.by_tensor[id(placeholder)] = grad


def compile(fn: Callable, cache_limit: int = 8) -> CompiledFunction:  # noqa: A001
    """Compile ``fn`` (or a Module: its forward) into generated numpy code, see the module
    docstring. ``fn`` may call ``loss.backward()``, ``opt.step()`` and ``opt.zero_grad()``:
    forward, symbolic backward and the in-place updates become one generated function."""
    return CompiledFunction(fn, cache_limit)


__all__ = ["CompiledFunction", "compile"]
