"""``trace(fn, *args)``: run ``fn`` once on eager tensors, recording every op into an IR graph.

Tensors passed as arguments, and tensors reached from closures, globals, ``self`` and module
attributes, become graph inputs named after where they were found (``x``,
``model.fc1.weight``); they are inputs by reference, never constants. Python scalars and
tensors made inside ``fn`` without gradients become constants. Python control flow runs
normally: the graph records the path taken.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GraphError, with_location
from ..ir.dump import dump_graph
from ..ir.graph import Graph, Node, Value, unique_name
from ..ir.ops.sources import CONSTANT
from .staging import Staging
from .state import STATE, Tape
from .tensor import Tensor

_SKIP = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type, np.ndarray,
         str, bytes, int, float, bool, complex)


def _walk(obj: Any, prefix: str, depth: int = 0,
          seen: set[int] | None = None) -> Iterator[tuple[str, Tensor]]:
    """``(dotted name, tensor)`` for tensors inside ``obj``: modules, containers, plain objects."""
    seen = set() if seen is None else seen
    if isinstance(obj, Tensor):
        yield prefix, obj
        return
    if depth > 6 or id(obj) in seen or isinstance(obj, _SKIP) or obj is None:
        return
    seen.add(id(obj))
    if isinstance(obj, list | tuple):
        items: Any = enumerate(obj)
    elif isinstance(obj, dict):
        items = obj.items()
    elif hasattr(obj, "_children"):  # nn.Module and containers
        items = obj._children()
    elif hasattr(obj, "__dict__") and not callable(obj):
        items = vars(obj).items()
    else:
        return
    for key, child in items:
        if isinstance(key, str | int) and not (isinstance(key, str) and key.startswith("__")):
            yield from _walk(child, f"{prefix}.{key}" if prefix else str(key), depth + 1, seen)


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__.lower()


def named_tensors(fn: Callable, args: tuple, kwargs: dict) -> tuple[list[int], dict]:
    """Where each reachable tensor is found: arguments first, then self, closures, globals.

    Returns the ids of the argument tensors (in signature order) and ``id -> (name, tensor)``.
    """
    found: dict[int, tuple[str, Tensor]] = {}

    def add(prefix: str, obj: Any) -> None:
        for name, t in _walk(obj, prefix):
            found.setdefault(id(t), (name, t))

    target = getattr(fn, "forward", fn) if not inspect.isroutine(fn) else fn
    try:
        bound = inspect.signature(target).bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            add(name, value)
    except (TypeError, ValueError):
        for i, value in enumerate(args):
            add(f"arg{i}", value)
        for name, value in kwargs.items():
            add(name, value)
    from_args = list(found)
    if not inspect.isroutine(fn):
        add("model", fn)
    owner = getattr(target, "__self__", None)
    if owner is not None and owner is not fn:
        add("self", owner)
    code = getattr(target, "__code__", None)
    if code is not None:
        for name, cell in zip(code.co_freevars, target.__closure__ or (), strict=True):
            try:
                add(name, cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        glb = getattr(target, "__globals__", {})
        for name in code.co_names:
            if name in glb:
                add(name, glb[name])
    return from_args, found


def flatten(result: Any) -> tuple[list[Tensor], Any]:
    """Tensors in ``result`` (a tensor or nested lists/tuples/dicts) and its structure."""
    if isinstance(result, Tensor):
        return [result], "tensor"
    if isinstance(result, list | tuple | dict):
        items = list(result.values()) if isinstance(result, dict) else list(result)
        leaves: list[Tensor] = []
        specs = []
        for item in items:
            sub, spec = flatten(item)
            leaves.extend(sub)
            specs.append(spec)
        kind = type(result).__name__ if not isinstance(result, dict) else "dict"
        keys = list(result) if isinstance(result, dict) else None
        return leaves, (kind, keys, specs)
    raise GraphError(with_location(f"trace: outputs must be tensors or lists, tuples and dicts "
                                   f"of them; got {type(result).__name__}"))


def unflatten(spec: Any, leaves: Iterator[Any]) -> Any:
    """Rebuild a structure from ``flatten``'s spec and an iterator of leaves."""
    if spec == "tensor":
        return next(leaves)
    kind, keys, specs = spec
    items = [unflatten(s, leaves) for s in specs]
    if kind == "dict":
        return dict(zip(keys, items, strict=True))
    return tuple(items) if kind == "tuple" else list(items)


def structure_text(spec: Any) -> str:
    """``tensor``, ``tuple(2)``, ``dict(a, b)``: a short description of a structure."""
    if spec == "tensor":
        return "tensor"
    kind, keys, specs = spec
    return f"dict({', '.join(map(str, keys))})" if kind == "dict" else f"{kind}({len(specs)})"


class GraphBuilder:
    """Turns recorded eager nodes into a standalone ``Graph`` with readable names."""

    def __init__(self, name: str, names: dict[int, tuple[str, Tensor]]) -> None:
        self.graph = Graph(name)
        self.names = names
        self.by_tensor: dict[int, Value] = {}
        self.by_node: dict[int, Value] = {}
        self.used: set[str] = set()
        self.captured = 0
        self.count = 0
        self.input_tensors: list[Tensor] = []
        #: compile traces: in-place updates of inputs, ``id(tensor) -> (tensor, new value)``
        self.writes: dict[int, tuple[Tensor, Value]] = {}
        self.tag = ""

    def fresh(self, base: str) -> str:
        return unique_name(base, self.used)

    def _input(self, t: Tensor, name: str) -> Value:
        value = Value(self.fresh(name), t.shape, t.dtype)
        self.graph.inputs.append(value)
        self.input_tensors.append(t)
        self.by_tensor[id(t)] = value
        return value

    def value_of(self, t: Tensor) -> Value:
        if t._node is not None and id(t._node) in self.by_node:
            return self.by_node[id(t._node)]
        if id(t) in self.by_tensor:
            return self.by_tensor[id(t)]
        if id(t) in self.names:
            return self._input(t, self.names[id(t)][0])
        if t._rg:  # a parameter-like tensor found nowhere we looked: still an input
            self.captured += 1
            return self._input(t, f"captured_{self.captured - 1}")
        value = Value(self.fresh(f"const_{self.count}"), t.shape, t.dtype)
        self.count += 1
        self.graph.nodes.append(Node(CONSTANT, (), {"value": np.array(t._data)}, out=value))
        self.by_tensor[id(t)] = value
        return value

    def add(self, node: Node) -> None:
        operands = tuple(self.value_of(t) for t in node.inputs)
        out = Value(self.fresh(f"{node.op.name}_{self.count}"), node.value.shape,
                    node.value.dtype)
        self.count += 1
        self.graph.nodes.append(Node(node.op, operands, dict(node.attrs), out=out, src=node.src,
                                     tag=self.tag))
        self.by_node[id(node)] = out

    def handle(self, event: Any, on_backward: Callable | None = None) -> None:
        """Add a recorded node, or apply a compile-trace event (see ``runtime.staging``)."""
        if isinstance(event, Node):
            self.add(event)
            return
        kind = event[0]
        if kind == "alias":
            self.by_tensor[id(event[1])] = self.value_of(event[2])
        elif kind == "mutate":
            _, target, new = event
            before = self.value_of(target)
            after = self.value_of(new)
            self.by_tensor[id(target)] = after
            if any(before is v for v in self.graph.inputs) or id(target) in self.writes:
                self.writes[id(target)] = (target, after)
        elif kind == "backward":
            if on_backward is None:
                raise GraphError("trace: backward() was recorded but nothing can derive it")
            on_backward(self, event[1], event[2])
            self.tag = "update"


def _run_recorded(fn: Callable, args: tuple, kwargs: dict, staging: Staging | None) -> tuple:
    """Run ``fn`` with every op (and, with ``staging``, every side effect) recorded; returns
    its result and the recorded nodes/events. The thread's tracing state is restored."""
    st = STATE
    events: list = staging.events if staging is not None else []
    saved = (st.tape, st.tracing, st.record_src, st.staging)
    st.tape, st.tracing, st.record_src, st.staging = Tape(), events, True, staging
    try:
        return fn(*args, **kwargs), events
    finally:
        st.tape, st.tracing, st.record_src, st.staging = saved


def _builder(fn: Callable, from_args: list[int], names: dict) -> GraphBuilder:
    builder = GraphBuilder(_fn_name(fn), names)
    for key in from_args:  # arguments come first, in signature order, used or not
        builder.value_of(names[key][1])
    return builder


def _finish(builder: GraphBuilder, structure: Any) -> Graph:
    builder.graph.meta["outputs"] = structure_text(structure)
    graph = builder.graph.verify()
    dump_graph(graph)
    return graph


def trace(fn: Callable, *args: Any, **kwargs: Any) -> Graph:
    """Run ``fn(*args, **kwargs)`` once and return its graph (like ``jax.make_jaxpr``)."""
    from_args, names = named_tensors(fn, args, kwargs)
    result, recorded = _run_recorded(fn, args, kwargs, None)
    outputs, structure = flatten(result)
    builder = _builder(fn, from_args, names)
    for node in recorded:
        builder.add(node)
    builder.graph.outputs = [builder.value_of(t) for t in outputs]
    return _finish(builder, structure)


@dataclass
class StepTrace:
    """What ``trace_step`` learned: the graph, where each input comes from, how outputs nest,
    and which tensors the step updates (values and gradients)."""

    graph: Graph
    input_tensors: list[Tensor]
    structure: Any
    n_results: int
    writes: list[Tensor] = field(default_factory=list)
    grads: list[tuple[Tensor, int | None]] = field(default_factory=list)
    has_backward: bool = False


def trace_step(fn: Callable, args: tuple, kwargs: dict,
               on_backward: Callable[[GraphBuilder, Tensor, list], None]) -> StepTrace:
    """Trace ``fn`` for compile(): like ``trace`` but in-place updates and ``backward()`` are
    recorded as events and undone afterwards, and reading values is an error."""
    from_args, names = named_tensors(fn, args, kwargs)
    staging = Staging([])
    for _, t in names.values():
        if t.is_leaf():
            staging.before_grad_change(t)
    try:
        result, events = _run_recorded(fn, args, kwargs, staging)
        outputs, structure = flatten(result)
        builder = _builder(fn, from_args, names)
        has_backward = False
        for event in events:
            has_backward |= isinstance(event, tuple) and event[0] == "backward"
            builder.handle(event, on_backward)
        builder.graph.outputs = [builder.value_of(t) for t in outputs]
        writes = [t for t, _ in builder.writes.values()]
        builder.graph.outputs += [v for _, v in builder.writes.values()]
        grads: list[tuple[Tensor, int | None]] = []
        for leaf in staging.grad_leaves():  # gradients as the step leaves them
            final = leaf._grad
            if final is staging.original_grad(leaf):
                continue
            if final is None:
                grads.append((leaf, None))
            else:
                grads.append((leaf, len(builder.graph.outputs)))
                builder.graph.outputs.append(builder.value_of(final))
    finally:
        staging.restore()
    return StepTrace(_finish(builder, structure), builder.input_tensors, structure,
                     len(outputs), writes, grads, has_backward)


def current_graph() -> Graph:
    """What this thread's eager tape holds since the last ``clear_graph()``, as a ``Graph``:
    leaves are inputs, values no recorded op reads are outputs."""
    nodes = STATE.tape.nodes()
    builder = GraphBuilder("tape", {})
    for node in nodes:
        for t in node.inputs:
            if t._node is None and id(t) not in builder.by_tensor and t._rg:
                builder._input(t, f"leaf_{len(builder.graph.inputs)}")
        builder.add(node)
    read = {id(t._node) for n in nodes for t in n.inputs if t._node is not None}
    builder.graph.outputs = [builder.by_node[id(n)] for n in nodes if id(n) not in read]
    return builder.graph
