"""Tracing: run a function once on real tensors with a ``Recorder`` and build its IR graph.

``trace(fn, *args)`` records every op into a ``Graph`` (like ``jax.make_jaxpr``). ``trace_step``
is what ``compile`` uses: in-place updates and ``backward()`` are staged (applied, recorded,
undone), and the result says where each graph input comes from on a later call, which inputs
the call updates, which gradients it writes and what it returns.

Inputs are captured by reference at the moment an op reads them: every tensor that existed
before the trace (however the function reached it) is an input bound to that object (or, for
a gradient read with ``.grad()``, to its leaf's gradient slot; for an argument, to that
argument's position). A numpy array found by the walk is an input too. Tensors born inside the
trace from Python values become constants; ``detach()`` is a stop-gradient op; values computed
under ``no_grad`` get a ``detach`` edge so the symbolic backward ignores them as eager does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CompileError, GraphError, with_location
from ..ir.dump import dump_graph
from ..ir.graph import Graph, Node, Value, unique_name
from ..ir.ops.elementwise import ASTYPE
from ..ir.ops.shape import DETACH
from ..ir.ops.sources import CONSTANT
from . import pytree
from .recorder import Backward, GradRead, Mutation, NewTensor, OpEvent, Recorder
from .state import STATE, Tape
from .tensor import GradState, Tensor, array_of, grad_state, is_shared_constant
from .walk import Reach, Snapshot, reach


class StateChange(CompileError):
    """The traced function changed Python state on an object it reached."""


@dataclass(frozen=True)
class Source:
    """An object a compiled call reads or writes: argument leaf ``index``, or ``obj`` itself."""

    name: str
    index: int = -1
    obj: Any = None


@dataclass(frozen=True)
class Input:
    """Graph input ``k`` reads ``sources[source]``'s ``part``: ``data`` (a tensor's array or an
    array itself) or ``grad`` (its gradient's array)."""

    source: int
    part: str


@dataclass(frozen=True)
class Result:
    """One returned leaf: ``tensor`` (graph output ``index``, a fresh tensor), ``object`` (the
    call's object for ``source``, as eager returned it), ``view`` (output ``index`` viewing
    ``source``'s tensor), ``grad`` (the gradient the call left on ``source``) or ``value`` (a
    Python value)."""

    kind: str
    index: int = -1
    source: int = -1
    value: Any = None
    requires_grad: bool = False
    leaf: bool = True


@dataclass
class StepTrace:
    """What ``trace_step`` learned (see the module docstring)."""

    graph: Graph
    sources: list[Source]
    inputs: list[Input]
    structure: Any
    results: list[Result]
    #: ``(source of the leaf, graph output or None, owned)``: the gradient the call leaves
    #: (``owned``: the leaf owns it, so the next ``backward()`` accumulates into it in place)
    grad_writes: list[tuple[int, int | None, bool]]
    #: ``(source of the leaf, its ``grad_state``)`` for every gradient the trace read
    grad_reads: list[tuple[int, GradState]]
    #: sources of tensors the graph reads (their identity and ``requires_grad`` are guarded)
    captured: list[int]
    reach: Reach
    has_backward: bool = False
    #: inputs whose tensors require grad (a compiled forward differentiates with respect to them)
    wrt: list[int] = field(default_factory=list)


class GraphBuilder:
    """Turns recorded events into a standalone ``Graph`` with readable names."""

    def __init__(self, name: str, rec: Recorder, names: dict[int, str],
                 arg_ids: dict[int, int], arg_names: list[str]) -> None:
        self.graph = Graph(name)
        self.rec = rec
        self.names = names
        self.arg_ids = arg_ids
        self.arg_names = arg_names
        self.used: set[str] = set()
        self.count = 0
        self.current: dict[int, Value] = {}
        #: recorded node -> the value it computed (the engine reads an op's saved output through
        #: a new tensor on the same node)
        self.node_values: dict[int, Value] = {}
        self.live: set[int] = set()
        self.sources: list[Source] = []
        self.source_of: dict[int, int] = {}
        self.inputs: list[Input] = []
        self.input_of: dict[tuple[int, str], int] = {}  # (source, part) -> input position
        self.tensor_of_input: list[Any] = []
        self.updated: dict[int, Value] = {}  # graph input position -> its new value
        self.grad_owner: dict[int, Any] = {}
        self.grad_reads: dict[int, GradState] = {}
        self.root_of: dict[int, Any] = {}
        self.views: dict[int, list[tuple[Any, Node]]] = {}
        self.captured = 0
        self.tag = ""

    # --- values ------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        return unique_name(base, self.used)

    def source(self, obj: Any) -> int:
        """The source index of a pre-existing object (an argument leaf, or the object)."""
        k = self.source_of.get(id(obj))
        if k is None:
            position = self.arg_ids.get(id(obj))
            if position is not None:
                src = Source(self.arg_names[position], index=position)
            else:
                name = self.names.get(id(obj))
                if name is None:
                    name = f"captured_{self.captured}"
                    self.captured += 1
                src = Source(name, obj=obj)
            k = self.source_of[id(obj)] = len(self.sources)
            self.sources.append(src)
        return k

    def _input(self, obj: Any, part: str, t: Any) -> Value:
        k = self.source(obj)
        position = self.input_of.get((k, part))
        if position is not None:
            return self.graph.inputs[position]
        label = self.sources[k].name + (".grad" if part == "grad" else "")
        value = Value(self.fresh(label), t.shape, t.dtype)
        self.input_of[(k, part)] = len(self.graph.inputs)
        self.graph.inputs.append(value)
        self.inputs.append(Input(k, part))
        self.tensor_of_input.append(t)
        if part == "data" and isinstance(t, Tensor) and t._rg:
            self.live.add(id(value))
        return value

    def constant(self, array: np.ndarray) -> Value:
        value = Value(self.fresh(f"const_{self.count}"), array.shape, array.dtype)
        self.count += 1
        self.graph.nodes.append(Node(CONSTANT, (), {"value": array}, out=value, tag=self.tag))
        return value

    def value_of(self, t: Any) -> Value:
        value = self.current.get(id(t))
        if value is not None:
            return value
        node = getattr(t, "_node", None)
        if node is not None and id(node) in self.node_values:
            return self.node_values[id(node)]
        if id(t) in self.rec.born:
            raise GraphError(f"internal: {t!r} was made in the trace but never recorded")
        if is_shared_constant(t):
            value = self.constant(t._data)
        else:
            owner = self.grad_owner.get(id(t))
            value = self._input(owner, "grad", t) if owner is not None else \
                self._input(t, "data", t)
        self.current[id(t)] = value
        return value

    def emit(self, op: Any, operands: tuple, attrs: dict, shape: tuple, dtype: Any,
             src: str | None) -> Value:
        out = Value(self.fresh(f"{op.name}_{self.count}"), shape, dtype)
        self.count += 1
        self.graph.nodes.append(Node(op, operands, dict(attrs), out=out, src=src, tag=self.tag))
        return out

    # --- events --------------------------------------------------------------------------------
    def on_op(self, event: OpEvent) -> None:
        node, t = event.node, event.out
        operands = tuple(self.value_of(x) for x in node.inputs)
        value = self.emit(node.op, operands, node.attrs, t.shape, t.dtype, node.src)
        self.node_values[id(node)] = value
        reaches = any(id(v) in self.live for v in operands) and t.dtype.kind == "f" \
            and node.op.vjp is not None
        if reaches and event.grad_enabled:
            self.live.add(id(value))
        elif reaches:  # computed under no_grad: no gradient flows back through it
            value = self.emit(DETACH, (value,), {}, t.shape, t.dtype, node.src)
        self.current[id(t)] = value
        if node.op.aliases_input:
            base = node.inputs[0]
            root = self.root_of.get(id(base), base)
            self.root_of[id(t)] = root
            self.views.setdefault(id(root), []).append((t, node))

    def on_new(self, event: NewTensor) -> None:
        source, node = event.source, event.tensor._node
        if node is not None:  # the engine's view of an op's saved output (a VJP reads it)
            value = self.node_values.get(id(node))
            if value is None:  # the op ran before the trace: its output is an input
                value = self._input(event.tensor, "data", event.tensor)
        elif isinstance(source, Tensor):
            value = self.value_of(source)
        elif isinstance(source, np.ndarray) and id(source) in self.names:
            value = self._input(source, "data", source)
            if value.dtype != event.data.dtype:
                value = self.emit(ASTYPE, (value,), {"dtype": event.data.dtype},
                                  event.data.shape, event.data.dtype, None)
        else:
            value = self.constant(event.data)
        self.current[id(event.tensor)] = value

    def on_mutation(self, event: Mutation) -> None:
        target = event.target
        self.value_of(target)  # a pre-existing target becomes an input first
        new = self.value_of(event.new)
        self.current[id(target)] = new
        if id(target) not in self.rec.born:
            owner = self.grad_owner.get(id(target))
            key = (self.source(owner), "grad") if owner is not None else \
                (self.source(target), "data")
            self.updated[self.input_of[key]] = new
        for view, node in self.views.get(id(target), []):  # views see the update, as in eager
            operands = tuple(self.value_of(x) for x in node.inputs)
            self.current[id(view)] = self.emit(node.op, operands, node.attrs, view.shape,
                                               view.dtype, node.src)

    def on_grad_read(self, event: GradRead) -> None:
        leaf, grad = event.leaf, event.grad
        if id(leaf) in self.rec.born or not event.original:
            return
        k = self.source(leaf)
        self.grad_reads.setdefault(k, event.state)
        if grad is not None:
            self.grad_owner[id(grad)] = leaf

    def replay(self, events: list, on_backward: Callable | None) -> bool:
        """Build the graph from ``events``; returns whether a ``backward()`` was recorded."""
        has_backward = False
        for event in events:
            if isinstance(event, OpEvent):
                self.on_op(event)
            elif isinstance(event, NewTensor):
                self.on_new(event)
            elif isinstance(event, Mutation):
                self.on_mutation(event)
            elif isinstance(event, GradRead):
                self.on_grad_read(event)
            elif isinstance(event, Backward):
                if on_backward is None:
                    raise GraphError("trace: backward() inside ap.trace() is not recorded; use "
                                     "ap.compile for whole training steps")
                on_backward(self, event.root, event.grads)
                has_backward = True
                self.tag = "update"
        return has_backward


def fn_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__.lower()
    return "lambda" if name == "<lambda>" else name


def parameter_names(fn: Any) -> list[str]:
    target = fn if inspect.isroutine(fn) or not hasattr(fn, "forward") else fn.forward
    try:
        return [p.name for p in inspect.signature(target).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []


def run_recorded(fn: Callable, args: tuple, kwargs: dict, rec: Recorder) -> Any:
    """Run ``fn`` with ``rec`` recording; the thread's recorder and tape are restored."""
    st = STATE
    saved = (st.recorder, st.tape)
    st.recorder, st.tape = rec, Tape()
    try:
        return fn(*args, **kwargs)
    finally:
        st.recorder, st.tape = saved


def trace(fn: Callable, *args: Any, **kwargs: Any) -> Graph:
    """Run ``fn(*args, **kwargs)`` once and return its graph (like ``jax.make_jaxpr``)."""
    return _traced(fn, args, kwargs).graph


def trace_with_captures(fn: Callable, *args: Any,
                        **kwargs: Any) -> tuple[Graph, dict[str, np.ndarray]]:
    """``trace``, and a copy of the value of every graph input that is not an argument (the
    parameters, buffers and arrays ``fn`` reached), by input name: what an exporter stores."""
    builder = _traced(fn, args, kwargs)
    captured = {value.name: np.array(array_of(t))
                for value, inp, t in zip(builder.graph.inputs, builder.inputs,
                                         builder.tensor_of_input, strict=True)
                if builder.sources[inp.source].index < 0}
    return builder.graph, captured


def _traced(fn: Callable, args: tuple, kwargs: dict) -> GraphBuilder:
    """The builder of ``trace``'s graph (verified and dumped), with what it knows of inputs."""
    leaves: list = []
    pytree.flatten((args, kwargs), leaves)
    names = pytree.leaf_names(args, kwargs, parameter_names(fn))
    found = reach(fn, [])
    rec = Recorder(staging=False)
    try:
        result = run_recorded(fn, args, kwargs, rec)
        builder = GraphBuilder(fn_name(fn), rec, found.names,
                               {id(x): i for i, x in enumerate(leaves) if isinstance(x, Tensor)},
                               names)
        for x in leaves:  # arguments come first, in signature order, used or not
            if isinstance(x, Tensor):
                builder.value_of(x)
        builder.replay(rec.events, None)
        outputs, structure = flatten_result(result)
        builder.graph.outputs = [builder.value_of(t) for t in outputs]
    finally:
        rec.undo()  # in-place updates (a generator's counter) show in the graph, not on objects
    _append_updates(builder)
    builder.graph.meta["outputs"] = structure_text(structure)
    dump_graph(builder.graph.verify())
    return builder


def trace_step(fn: Callable, args: tuple, kwargs: dict, leaves: list, arg_names: list[str],
               found: Reach, on_backward: Callable) -> StepTrace:
    """Trace ``fn`` for ``compile`` (see the module docstring). ``leaves`` are the call's
    argument leaves as ``fn`` sees them (numpy arrays already stand-in tensors). Raises
    ``CompileError`` when the trace changed Python state on the objects it walked."""
    snapshot = Snapshot.take(found)
    rec = Recorder(staging=True)
    arg_ids = {id(x): i for i, x in enumerate(leaves) if isinstance(x, Tensor)}
    for x in leaves:
        if isinstance(x, Tensor) and x._node is None:
            rec.before_grad_change(x)
    for _, t in found.tensors():
        if t._node is None:
            rec.before_grad_change(t)
    try:
        result = run_recorded(fn, args, kwargs, rec)
        changed = snapshot.changes()
        if changed:
            raise StateChange(with_location(
                f"compile: {fn_name(fn)} changes Python state when it runs ("
                + "; ".join(changed[:3]) + "); a compiled function would do that only once, "
                "when it is traced. Keep such changes outside the compiled function (e.g. "
                "call sched.step() after it) or use tensors updated in place"))
        builder = GraphBuilder(fn_name(fn), rec, found.names, arg_ids, arg_names)
        for x in leaves:
            if isinstance(x, Tensor):
                builder.value_of(x)
        has_backward = builder.replay(rec.events, on_backward)
        return _finish(builder, result, found, has_backward)
    finally:
        rec.undo()
        snapshot.restore()


def _finish(builder: GraphBuilder, result: Any, found: Reach, has_backward: bool) -> StepTrace:
    graph = builder.graph
    rec = builder.rec
    flat: list = []
    structure = pytree.flatten(result, flat)
    # a returned gradient is the leaf's gradient object after the call (updated in place or new)
    final_grads = {id(leaf._grad): leaf for leaf in rec.grad_leaves() if leaf._grad is not None}
    results = []
    for leaf in flat:
        owner = final_grads.get(id(leaf)) if isinstance(leaf, Tensor) else None
        results.append(Result("grad", source=builder.source(owner)) if owner is not None
                       else _result(builder, leaf))
    grad_writes: list[tuple[int, int | None, bool]] = []
    for leaf in rec.grad_leaves():
        final = leaf._grad
        if final is rec.original_grad(leaf) or id(leaf) in rec.born:
            continue
        k = builder.source(leaf)
        if final is None:
            grad_writes.append((k, None, False))
        else:
            grad_writes.append((k, len(graph.outputs), grad_state(leaf) is GradState.OWNED))
            graph.outputs.append(builder.value_of(final))
    _append_updates(builder)
    _refuse_aliased_updates(builder)
    graph.meta["outputs"] = "tensor" if structure is None else "pytree"
    graph.verify()
    dump_graph(graph)
    wrt = [i for i, (inp, t) in enumerate(zip(builder.inputs, builder.tensor_of_input,
                                              strict=True))
           if inp.part == "data" and isinstance(t, Tensor) and t._rg and t.dtype.kind == "f"]
    captured = sorted({inp.source for inp in builder.inputs if builder.sources[inp.source].obj
                       is not None and inp.part == "data"})
    return StepTrace(graph, builder.sources, builder.inputs, structure, results, grad_writes,
                     list(builder.grad_reads.items()), captured, found, has_backward, wrt)


def _append_updates(builder: GraphBuilder) -> None:
    """Each in-place update of a pre-existing tensor becomes an output and a graph update."""
    graph = builder.graph
    for position, value in builder.updated.items():
        graph.updates.append((position, len(graph.outputs)))
        graph.outputs.append(value)


def _result(builder: GraphBuilder, leaf: Any) -> Result:
    graph = builder.graph
    if isinstance(leaf, Tensor):
        if id(leaf) not in builder.rec.born and id(leaf) not in builder.current:
            builder.value_of(leaf)
        if id(leaf) not in builder.rec.born:
            owner = builder.grad_owner.get(id(leaf))
            if owner is None:
                return Result("object", source=builder.source(leaf))
        graph.outputs.append(builder.value_of(leaf))
        index = len(graph.outputs) - 1
        root = builder.root_of.get(id(leaf))
        # eager records a node only for values that require grad: the others are leaves
        flags = {"requires_grad": leaf._rg, "leaf": leaf._node is None or not leaf._rg}
        if root is not None and id(root) not in builder.rec.born:
            return Result("view", index, builder.source(root), **flags)
        return Result("tensor", index, **flags)
    if leaf is None or isinstance(leaf, pytree.SCALAR_TYPES):
        return Result("value", value=leaf)
    raise CompileError(with_location(
        f"compile: a compiled function may return tensors, Python scalars, strings and None "
        f"(in lists, tuples, dicts); got {type(leaf).__name__}"))


def _refuse_aliased_updates(builder: GraphBuilder) -> None:
    """An input updated in place while another input shares its memory cannot be compiled:
    eager reads the other one after the update, the generated code before it."""
    arrays = [t._data if isinstance(t, Tensor) else t for t in builder.tensor_of_input]
    for position in builder.updated:
        for j, other in enumerate(arrays):
            if j != position and np.may_share_memory(arrays[position], other):
                names = (builder.graph.inputs[position].name, builder.graph.inputs[j].name)
                raise CompileError(with_location(
                    f"compile: {names[0]} is updated in place and {names[1]} shares its memory "
                    f"(a view taken before the call, or the same tensor passed twice); pass "
                    f"the tensor once, or compute the view inside the compiled function"))


def flatten_result(result: Any) -> tuple[list[Tensor], Any]:
    """Tensors in ``result`` (a tensor or nested lists/tuples/dicts) and its structure."""
    if isinstance(result, Tensor):
        return [result], "tensor"
    if isinstance(result, list | tuple | dict):
        items = list(result.values()) if isinstance(result, dict) else list(result)
        leaves: list[Tensor] = []
        specs = []
        for item in items:
            sub, spec = flatten_result(item)
            leaves.extend(sub)
            specs.append(spec)
        kind = type(result).__name__ if not isinstance(result, dict) else "dict"
        keys = list(result) if isinstance(result, dict) else None
        return leaves, (kind, keys, specs)
    raise GraphError(with_location(f"trace: outputs must be tensors or lists, tuples and dicts "
                                   f"of them; got {type(result).__name__}"))


def structure_text(spec: Any) -> str:
    """``tensor``, ``tuple(2)``, ``dict(a, b)``: a short description of a structure."""
    if spec == "tensor":
        return "tensor"
    kind, keys, specs = spec
    return f"dict({', '.join(map(str, keys))})" if kind == "dict" else f"{kind}({len(specs)})"


def current_graph() -> Graph:
    """What this thread's eager tape holds since the last ``clear_graph()``, as a ``Graph``:
    leaves are inputs, values no recorded op reads are outputs."""
    nodes = STATE.tape.nodes()
    graph = Graph("tape")
    used: set[str] = set()
    values: dict[int, Value] = {}

    def value_of(t: Tensor) -> Value:
        if t._node is not None and id(t._node) in values:
            return values[id(t._node)]
        if id(t) not in values:
            value = Value(unique_name(f"leaf_{len(graph.inputs)}", used), t.shape, t.dtype)
            graph.inputs.append(value)
            values[id(t)] = value
        return values[id(t)]

    for node in nodes:
        operands = tuple(value_of(t) for t in node.inputs)
        out = Value(unique_name(f"{node.op.name}_{len(graph.nodes)}", used), node.value.shape,
                    node.value.dtype)
        graph.nodes.append(Node(node.op, operands, dict(node.attrs), out=out, src=node.src))
        values[id(node)] = out
    read = {id(t._node) for n in nodes for t in n.inputs if t._node is not None}
    graph.outputs = [values[id(n)] for n in nodes if id(n) not in read]
    return graph
