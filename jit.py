"""``compile(fn_or_module)``: guarded, cached compiled functions and whole training steps.

The rule: a compiled call returns what the eager call would have returned and leaves every
object as the eager call would have left it, or raises a ``CompileError`` saying why not.

A call's *key* is the structure of its arguments (containers, keys, keyword names) with each
leaf's kind: tensors and arrays by shape, dtype and ``requires_grad``, scalars and strings by
value, modules/optimizers/functions by identity; plus the grad mode. Each key holds entries
whose *guards* (see ``runtime.guards``) check what the trace read from the objects it walked.
A miss traces ``fn`` (changing no user object), lowers the graph and caches the entry; a hit
gathers the input arrays, runs the generated code, writes updates back into the call's tensors,
sets gradients and builds the results.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from weakref import ref

import numpy as np

from .compiler.autodiff import joint, split
from .compiler.pipeline import CompiledGraph, lower
from .errors import CompileError, GraphError, with_location
from .ir.display import repr_html, repr_svg
from .ir.graph import Graph, Node
from .ir.ops.sources import CONSTANT
from .ir.registry import OpDef
from .runtime import pytree
from .runtime.checking import run_checked
from .runtime.export_step import export_step
from .runtime.guards import GuardSet
from .runtime.recorder import NumpyArgument
from .runtime.state import STATE
from .runtime.tensor import Tensor, _wrap, own_grad
from .runtime.tracing import (
    GraphBuilder,
    Result,
    StateChange,
    StepTrace,
    fn_name,
    parameter_names,
    trace_step,
)
from .runtime.walk import FUNCTIONS, SCALARS, reach


def _input_roots(graph: Graph) -> dict[int, int]:
    """Value id -> input position, for every input and every view of one."""
    roots = {id(v): j for j, v in enumerate(graph.inputs)}
    for node in graph.nodes:
        if node.op.aliases_input and id(node.inputs[0]) in roots:
            roots[id(node.out)] = roots[id(node.inputs[0])]
    return roots


def _borrowed(graph: Graph) -> set[int]:
    """Output positions whose arrays may be a graph input's, a constant's or an updated input's
    new array (or views of them): returned to the user, they must be copied, or a later write
    would reach them."""
    shared = set(_input_roots(graph)) | {id(graph.outputs[k]) for _, k in graph.updates}
    for node in graph.nodes:
        if node.op is CONSTANT or (node.op.aliases_input and id(node.inputs[0]) in shared):
            shared.add(id(node.out))
    return {k for k, v in enumerate(graph.outputs) if id(v) in shared}


@dataclass
class _Call:
    """What a compiled forward's backward needs from one call."""

    results: tuple
    saved: tuple


class Entry:
    """One compiled variant of a function: guards, generated code, and how to deliver."""

    def __init__(self, step: StepTrace, guards: GuardSet, forward: CompiledGraph,
                 backward: CompiledGraph | None = None, n_saved: int = 0,
                 cotangent_outputs: tuple[int, ...] = ()) -> None:
        self.step, self.guards = step, guards
        self.check = guards.compile()
        self.forward, self.backward = forward, backward
        self.n_saved, self.cotangent_outputs = n_saved, cotangent_outputs
        self.seconds = 0.0
        sources = step.sources
        self._template: list[Any] = []
        self._args: list[tuple[int, int]] = []
        self._grads: list[tuple[int, Any, int]] = []
        for slot, inp in enumerate(step.inputs):
            src = sources[inp.source]
            fixed = src.obj
            if inp.part == "grad":
                self._template.append(None)
                self._grads.append((slot, fixed, src.index))
            elif fixed is None:
                self._template.append(None)
                self._args.append((slot, src.index))
            else:
                self._template.append(fixed._data if isinstance(fixed, Tensor) else fixed)
        self._borrowed = _borrowed(forward.graph)
        # saved values that are inputs (or views of them): the backward reads those inputs
        roots = _input_roots(forward.graph)
        first = len(forward.graph.outputs) - n_saved
        self._saved_inputs = {k - first: roots[id(v)] for k, v in
                              enumerate(forward.graph.outputs) if k >= first and id(v) in roots}
        self._updates = [(j, k, step.inputs[j]) for j, k in step.graph.updates]
        # the per-call bookkeeping, resolved once: (input slot, output, fixed owner or None,
        # source, whether the update is of a gradient)
        self._update_plan = [(j, k, sources[inp.source].obj, inp.source, inp.part == "grad")
                             for j, k, inp in self._updates]
        self._grad_plan = [(sources[source].obj, source, k, owned, k in self._borrowed)
                           for source, k, owned in step.grad_writes]
        self.op = OpDef(name=f"compiled[{step.graph.name}]", kind="other", impl=None,
                        infer=None, vjp=self._vjp, save_inputs=True)

    def _object(self, source: int, leaves: list) -> Any:
        src = self.step.sources[source]
        return src.obj if src.obj is not None else leaves[src.index]

    def gather(self, leaves: list) -> list:
        arrays = self._template.copy()
        for slot, index in self._args:
            x = leaves[index]
            arrays[slot] = x._data if type(x) is Tensor else x
        for slot, fixed, index in self._grads:
            leaf = fixed if fixed is not None else leaves[index]
            arrays[slot] = leaf._grad._data
        return arrays

    def fresh(self, outs: tuple, k: int) -> np.ndarray:
        out = outs[k]
        return np.array(out, copy=True) if k in self._borrowed else out

    def run(self, leaves: list) -> Any:
        arrays = self.gather(leaves)
        outs = self.forward.executable(*arrays)
        for j, k, owner, source, is_grad in self._update_plan:
            target = arrays[j]
            if outs[k] is not target:
                np.copyto(target, outs[k], casting="same_kind")
            if owner is None:
                owner = leaves[self.step.sources[source].index]
            if is_grad:
                owner = owner._grad
            if isinstance(owner, Tensor):
                owner._vc[0] += 1
        for leaf, source, k, owned, borrowed in self._grad_plan:
            if leaf is None:
                leaf = leaves[self.step.sources[source].index]
            if k is None:
                leaf._grad = None
                continue
            out = np.array(outs[k], copy=True) if borrowed else outs[k]
            if owned:
                own_grad(leaf, out)
            else:
                leaf._grad = _wrap(out, None, False)
        joined = self._join(leaves, outs) if self.backward is not None and \
            STATE.grad_enabled else {}
        results = [self._result(r, leaves, outs, joined) for r in self.step.results]
        return pytree.rebuild_from(self.step.structure, iter(results))

    def _result(self, r: Result, leaves: list, outs: tuple, joined: dict) -> Any:
        if r.kind == "value":
            return r.value
        if r.kind == "object":
            return self._object(r.source, leaves)
        if r.kind == "grad":
            return self._object(r.source, leaves)._grad
        if r.index in joined:
            return joined[r.index]
        if r.kind == "view":
            owner = self._object(r.source, leaves)
            vc = owner._vc if isinstance(owner, Tensor) else None
            out = _wrap(outs[r.index], None, False, vc)
        else:
            out = _wrap(self.fresh(outs, r.index), None, False)
        out._rg = r.requires_grad
        if r.requires_grad and not r.leaf:  # eager's has a graph; this one has no backward
            out._node = Node(self.op, (), {"k": None}, value=out._data, tape=STATE.tape)
        return out

    # --- compiled forwards join the eager graph -----------------------------------------------
    def _join(self, leaves: list, outs: tuple) -> dict[int, Tensor]:
        """Results with a gradient path become nodes whose backward runs the compiled
        backward on what the forward saved; the versions of the inputs it reads are checked
        then, and numpy arguments it reads are copied now."""
        step = self.step
        wrt = tuple(self._object(step.inputs[j].source, leaves) for j in step.wrt)
        saved = list(outs[len(outs) - self.n_saved:])
        versions = []
        for k, j in self._saved_inputs.items():  # only what the backward reads, as eager
            obj = self._object(step.inputs[j].source, leaves)
            if isinstance(obj, Tensor):
                versions.append((obj._vc, obj._vc[0]))
            else:  # a numpy argument: eager's Tensor(x) copied it
                saved[k] = np.array(saved[k], copy=True)
        saved_versions = tuple(versions)
        call = _Call(tuple(outs[:len(outs) - self.n_saved]), tuple(saved))
        tape = STATE.tape
        joined = {}
        for k in self.cotangent_outputs:
            node = Node(self.op, wrt, {"k": k, "call": call}, value=outs[k], tape=tape,
                        saved=saved_versions)
            tape.refs.append(ref(node))
            joined[k] = _wrap(self.fresh(outs, k), node, True)
        return joined

    def _vjp(self, g: Tensor, out: Any, inputs: tuple, attrs: dict, needs: tuple) -> tuple:
        if attrs["k"] is None:
            raise CompileError(with_location(
                f"backward: this tensor came out of a compiled function "
                f"({self.step.graph.name}) that ran its own backward() and updates; "
                f"backward through its result again is not supported"))
        if STATE.grad_enabled:
            raise GraphError(with_location("backward(create_graph=True) through a compiled "
                                           "function is not supported"))
        call: _Call = attrs["call"]
        k = attrs["k"]
        cotangents = [np.asarray(g._data, dtype=call.results[j].dtype) if j == k else
                      np.zeros_like(call.results[j]) for j in self.cotangent_outputs]
        grads = self.backward.executable(*call.saved, *cotangents)
        return tuple(_wrap(np.asarray(gr), None, False) for gr in grads)


class CompiledFunction:
    """What ``compile`` returns: call it like the function; inspect it with ``ir()``,
    ``source()``, ``guards()``, ``stats()`` and ``cache_info()``."""

    def __init__(self, fn: Callable, cache_limit: int = 8, check: bool = False) -> None:
        self.fn = fn
        self.cache_limit = cache_limit
        self.check = check
        self.__name__ = fn_name(fn)
        self._entries: dict[tuple, list[Entry]] = {}
        self._last: Entry | None = None
        self._last_key: tuple | None = None
        self._retried: set[tuple] = set()
        self.hits = self.misses = self.eager_calls = 0
        self.miss_reasons: list[str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        st = STATE
        if st.recorder is not None:  # inside another function's trace: traced through
            return self.fn(*args, **kwargs)
        if st.anomaly:  # anomaly mode checks every op: that is eager execution
            self.eager_calls += 1
            return self.fn(*args, **kwargs)
        if self.check or _CHECK_ALL:
            return run_checked(self.fn, self._call, args, kwargs)
        return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict) -> Any:
        key, leaves = pytree.key_of(args, kwargs)
        key = (STATE.grad_enabled, key)
        for entry in self._entries.get(key, ()):
            if entry.check(leaves):
                self.hits += 1
                self._last = entry
                return entry.run(leaves)
        return self._miss(key, leaves, args, kwargs)

    def _compiles(self) -> int:
        return sum(len(entries) for entries in self._entries.values())

    # --- compiling -----------------------------------------------------------------------------
    def _explain(self, key: tuple, leaves: list, names: list[str]) -> str:
        same = self._entries.get(key)
        if same:
            return same[-1].guards.explain(leaves) or "a guard failed"
        if self._last_key is None:
            return "first call"
        old = self._last_key
        if old[0] != key[0]:
            return f"grad mode: {old[0]} -> {key[0]}"
        if old[1][0] != key[1][0] or len(old[1][1]) != len(key[1][1]):
            return "the structure of the arguments changed (containers, keys, keyword names)"
        diffs = [f"{name}: {pytree.describe_key(a)} -> {pytree.describe_key(b)}"
                 for name, a, b in zip(names, old[1][1], key[1][1], strict=False) if a != b]
        return "; ".join(diffs) or "the structure of the arguments changed"

    def _miss(self, key: tuple, leaves: list, args: tuple, kwargs: dict) -> Any:
        self.misses += 1
        names = pytree.leaf_names(args, kwargs, parameter_names(self.fn))
        reason = self._explain(key, leaves, names)
        self.miss_reasons.append(reason)
        count = self._compiles()
        if count >= self.cache_limit:
            warnings.warn(f"aprender.compile: {self.__name__} is compiling variant {count + 1}, "
                          f"past its cache limit of {self.cache_limit} (nothing falls back to "
                          f"eager); this miss: {reason}", RuntimeWarning, stacklevel=4)
        start = time.perf_counter()
        stand_ins = {id(x): NumpyArgument.stand_in(x) for x in leaves if type(x) is np.ndarray}
        t_args, t_kwargs = pytree.rebuild((args, kwargs), lambda x: stand_ins.get(id(x), x))
        t_leaves = [stand_ins.get(id(x), x) for x in leaves]
        objects = [(n, x) for n, x in zip(names, leaves, strict=True) if pytree.by_reference(x)]
        found = reach(self.fn, objects)
        try:
            step = trace_step(self.fn, t_args, t_kwargs, t_leaves, names, found,
                              _derive_backward)
        except StateChange:
            if key in self._retried:
                raise
            # state made on a first call (a lazy buffer): run eagerly now, trace next time
            self._retried.add(key)
            self.eager_calls += 1
            return self.fn(*args, **kwargs)
        entry = _build_entry(step, leaves, key)
        entry.seconds = time.perf_counter() - start
        self._entries.setdefault(key, []).append(entry)
        self._last, self._last_key = entry, key
        return entry.run(leaves)

    # --- inspection ----------------------------------------------------------------------------
    def _entry(self) -> Entry:
        if self._last is None:
            raise GraphError(f"{self.__name__}: nothing compiled yet; call it once first")
        return self._last

    def ir(self, stage: str | None = None) -> str:
        """The latest variant's graphs: every stage (default) or the one after ``stage``
        (``input``, ``fold_constants``, ``simplify``, ``cse``, ``dce``, ``fuse``,
        ``schedule_collectives``)."""
        entry = self._entry()
        parts = []
        for label, compiled in (("forward", entry.forward), ("backward", entry.backward)):
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
        return "\n\n".join(c.source for c in (entry.forward, entry.backward) if c is not None)

    def guards(self) -> str:
        """What is checked before each call of the latest variant, one guard per line."""
        entry = self._entry()
        return "key: argument structure, shapes, dtypes, requires_grad, scalar values, " \
               "grad mode\n" + str(entry.guards)

    def export(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> Path:
        """Write the latest variant as a Python file that needs only numpy (its ``step``
        takes the arrays passed per call and a state dict), its arrays in a ``.npz`` beside it
        (see ``compiler.standalone``). ``args``/``kwargs``: example arguments saved for its
        ``main()`` (default: zeros). Returns the file's path."""
        entry = self._entry()
        example = (args, kwargs) if args or kwargs else None
        return export_step(path, entry.step, entry.forward, entry._borrowed, example)

    def stats(self) -> dict[str, Any]:
        """Compile time in total and per pass for the latest variant, and cache figures."""
        entry = self._entry()
        passes = {s.name: s.seconds * 1e3 for s in entry.forward.stages[1:]}
        return {"compile_ms": entry.seconds * 1e3, "pass_ms": passes, **self.cache_info()}

    def cache_info(self) -> dict[str, Any]:
        """Hits, misses, compiles, eager calls, and why each miss happened (old -> new)."""
        return {"hits": self.hits, "misses": self.misses,
                "compiles": self._compiles(),
                "eager_calls": self.eager_calls, "limit": self.cache_limit,
                "miss_reasons": list(self.miss_reasons)}

    def _sections(self) -> list[tuple[str, Graph]]:
        """The latest variant's optimised graphs, titled (none before the first call)."""
        entry = self._last
        if entry is None:
            return []
        pairs = (("forward", entry.forward), ("backward", entry.backward))
        return [(label, c.graph) for label, c in pairs if c is not None]

    def _repr_svg_(self) -> str | None:
        return repr_svg(self.__name__, self._sections())  # Jupyter (ir/display.py)

    def _repr_html_(self) -> str | None:
        return repr_html(self.__name__, self._sections())


_CHECK_ALL = os.environ.get("APRENDER_CHECK", "") not in ("", "0")


def _build_entry(step: StepTrace, leaves: list, key: tuple) -> Entry:
    guards = _guards(step, leaves)
    graph = step.graph
    cotangent_free = step.has_backward or not step.wrt or not key[0]
    if cotangent_free:
        return Entry(step, guards, lower(graph))
    full = joint(graph, [graph.inputs[i] for i in step.wrt], seed="input")
    forward, backward = split(full)
    return Entry(step, guards, lower(forward.graph), lower(backward), forward.n_saved,
                 tuple(full.cotangent_outputs))


def _guards(step: StepTrace, leaves: list) -> GuardSet:
    """Every guard of an entry (see the module docstring of ``runtime.guards``)."""
    gs = GuardSet()
    firsts: dict[int, int] = {}
    for i, leaf in enumerate(leaves):
        if pytree.by_reference(leaf):
            gs.argument_is(i, leaf)
        elif isinstance(leaf, Tensor | np.ndarray):
            j = firsts.setdefault(id(leaf), i)
            if j != i:
                gs.same_arguments(i, j)
    captured = {id(step.sources[k].obj) for k in step.captured}
    for place, value in step.reach.places:
        if isinstance(value, Tensor | np.ndarray):
            if id(value) in captured:
                gs.identity(place, value)
            elif isinstance(value, np.ndarray):
                gs.array_values(place, value)
        elif value is None or isinstance(value, SCALARS):
            gs.value(place, value)
        elif isinstance(value, list | tuple | dict):
            gs.length(place, len(value))
        elif isinstance(value, FUNCTIONS) or (callable(value) and not hasattr(value, "__dict__")):
            gs.identity(place, value)
    for k in step.captured:
        src = step.sources[k]
        if isinstance(src.obj, Tensor):
            gs.attribute(src.name, gs.bind(src.obj), "_rg", src.obj._rg)
    for k, _, _ in step.grad_writes if step.has_backward else ():
        src = step.sources[k]
        leaf = src.obj if src.obj is not None else leaves[src.index]
        gs.hooks_unchanged(src.name, gs.bind(leaf) if src.obj is not None else f"L[{src.index}]",
                           leaf)
    for k, state in step.grad_reads:
        src = step.sources[k]
        gs.grad_state(src.name, gs.bind(src.obj) if src.obj is not None else f"L[{src.index}]",
                      state)
    return gs


def _derive_backward(builder: GraphBuilder, root: Tensor, pairs: list) -> None:
    """At a recorded ``backward()``: append the symbolic backward of everything traced so far
    and map each leaf's gradient placeholder to its gradient value."""
    wrt = [builder.value_of(leaf) for leaf, _ in pairs]
    graph = builder.graph
    forward = Graph(graph.name, graph.inputs, graph.nodes, [builder.value_of(root)])
    full = joint(forward, wrt)
    graph.nodes = full.graph.nodes
    builder.used |= {n.out.name for n in full.graph.nodes}
    for (_, placeholder), grad in zip(pairs, full.graph.outputs[1:], strict=True):
        builder.current[id(placeholder)] = grad


def compile(fn: Callable, cache_limit: int = 8, check: bool = False) -> CompiledFunction:  # noqa: A001
    """Compile ``fn`` (or a Module: its forward) into generated numpy code (see the module
    docstring). ``fn`` may call ``loss.backward()``, ``opt.step()`` and ``opt.zero_grad()``:
    forward, symbolic backward and the in-place updates become one generated function.
    ``check=True`` (or ``APRENDER_CHECK=1``) also runs ``fn`` eagerly beside each call and
    raises at the first difference."""
    return CompiledFunction(fn, cache_limit, check)


__all__ = ["CompiledFunction", "compile"]
