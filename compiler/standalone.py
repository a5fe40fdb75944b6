"""Standalone export: a compiled step's generated code as a Python file that needs only numpy.

``write_standalone(path, step)`` writes ``path`` (``.py``) and, beside it, ``.npz`` (same stem)
with the initial value of every state array the step reads (``state/<key>``), example
arguments (``example/<name>``) and the generated code's array constants (``const/<n>``). The
file holds a docstring listing arguments, state, gradients and results (names, shapes,
dtypes), the aprender kernels the generated code calls (copied by ``bundle``), the generated
``build`` function, ``load()``, ``step(*arguments, state)`` (one compiled call: updates the
state arrays and updated arguments in place, stores the gradients it writes in ``state`` under
``<name>.grad``) and ``main()``, which runs ``step`` once on the examples and prints the
outputs' shapes. What the runtime knows of a call (which input is an argument, which array a
state key names) comes in as a ``StandaloneStep``.
"""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from ..errors import CompileError
from ..ir.graph import Graph, Node, node_outputs
from .bundle import Bundle
from .codegen import Program

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                          undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.filters["py"] = repr


@dataclass(frozen=True)
class StandaloneInput:
    """One input of the generated function, in order: an ``argument`` (passed to ``step`` on
    every call) or a ``state`` array (``state[name]``), with its example or initial value."""

    name: str
    kind: str
    value: np.ndarray


@dataclass(frozen=True)
class Returned:
    """One returned leaf: graph ``output`` ``index`` (a fresh copy when ``copy``), the
    ``argument`` or ``state`` array called ``name`` itself, or a Python ``value``."""

    kind: str
    index: int = -1
    name: str = ""
    value: Any = None
    copy: bool = False


@dataclass(frozen=True)
class ReturnedContainer:
    """A returned ``list``, ``tuple`` or ``dict`` (``keys``) of ``items``."""

    kind: str
    items: tuple
    keys: tuple = ()


@dataclass
class StandaloneStep:
    """What a standalone module needs of one compiled variant."""

    name: str
    program: Program
    graph: Graph
    inputs: list[StandaloneInput]
    #: ``(input position, output index)``: the output's values go into that input's array
    updates: list[tuple[int, int]]
    #: ``(state key, output index or None (the gradient is removed), copy)``
    grad_writes: list[tuple[str, int | None, bool]]
    returns: Returned | ReturnedContainer
    #: arguments and state arrays that no op reads, returned as they are
    extra: list[StandaloneInput] = field(default_factory=list)
    training: bool = False


def _text(s: str) -> str:
    """``s`` made safe inside a triple-quoted docstring, on one line."""
    s = "".join(ch if ch.isprintable() else "?" for ch in s)
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _type(value: Any) -> str:
    return f"{np.dtype(value.dtype)}{list(value.shape)}"


def _key_literal(key: Any) -> str:
    """A result dict's key as Python source; a CompileError for keys that have none."""
    if key is None or type(key) in (str, int, bool) or (type(key) is float
                                                           and math.isfinite(key)):
        return repr(key)
    raise CompileError(f"export: a result dict key {key!r} ({type(key).__name__}) cannot be "
                       f"written into a standalone file; use str, int, finite float, bool or "
                       f"None keys")


def _identifiers(names: list[str]) -> list[str]:
    """Python parameter names for argument names (``batch[0]`` -> ``batch_0``), distinct."""
    # the step's own names and the module's globals, which a parameter would shadow
    taken = {"state", "outs", "np", "threading", "Path", "NPZ", "ARGUMENTS", "STATE", "KERNELS",
             "BUFFERS", "constants", "load", "step", "main", "build"}
    out = []
    for name in names:
        base = re.sub(r"\W+", "_", name, flags=re.ASCII).strip("_") or "arg"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = "arg_" + base
        ident, k = base, 1
        while ident in taken:
            ident, k = f"{base}_{k}", k + 1
        taken.add(ident)
        out.append(ident)
    return out


#: the top-level names the template defines (no bundled helper may take one)
_MODULE_NAMES = ("annotations", "NPZ", "ARGUMENTS", "STATE", "KERNELS", "BUFFERS", "build",
                 "constants", "load", "step", "main", "_LOCAL", "_function", "_check", "_leaves")


def _imports(lines: list[str]) -> str:
    """Import lines grouped as isort does: the standard library, then numpy."""
    groups: tuple[list[str], list[str]] = ([], [])
    for line in lines:
        groups[line.split()[1].split(".")[0] == "numpy"].append(line)
    return "\n\n".join("\n".join(sorted(g, key=lambda s: (s.startswith("from"), s)))
                       for g in groups if g)


def _effects(graph: Graph, program: Program) -> None:
    for node in program.plan.schedule if program.plan else graph.nodes:
        if node.op.effects:
            raise CompileError(
                f"standalone export: {graph.name} runs {node.op.name} (computing "
                f"{node.out.name}), an op that acts beyond its result (an MPI collective) and "
                f"needs aprender.distributed's communicator; export a step that does not use "
                f"DistributedDataParallel or collectives")


def _user(graph: Graph, program: Program, value: Any) -> str:
    """The op whose attributes hold ``value`` (for error messages)."""
    def holds(a: Any) -> bool:
        return a is value or isinstance(a, tuple | list) and any(holds(x) for x in a)

    nodes: list[Node] = program.plan.schedule if program.plan else graph.nodes
    for node in nodes:
        if any(holds(a) for a in node.attrs.values()):
            return f"op {node.op.name} (computing {node_outputs(node)[0].name})"
    return "the generated code"


class _Constants:
    """Python source for the generated code's constants; arrays go to the ``.npz``."""

    def __init__(self, step: StandaloneStep) -> None:
        self.step = step
        self.arrays: dict[str, np.ndarray] = {}

    def code(self, value: Any, top: Any) -> str:
        if isinstance(value, np.ndarray | np.generic):
            key = f"const/{len(self.arrays)}"
            self.arrays[key] = np.asarray(value)
            return f"data[{key!r}]" + ("[()]" if isinstance(value, np.generic) else "")
        if value is None or isinstance(value, bool | int | str | bytes):
            return repr(value)
        if isinstance(value, float):
            return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
        if value is Ellipsis:
            return "Ellipsis"
        if isinstance(value, np.dtype) and value.fields is None:
            return f"np.dtype({value.str!r})"
        if isinstance(value, type) and getattr(np, value.__name__, None) is value:
            return f"np.{value.__name__}"
        if isinstance(value, slice):
            parts = (self.code(p, top) for p in (value.start, value.stop, value.step))
            return "slice({}, {}, {})".format(*parts)
        if isinstance(value, tuple | list):
            inner = ", ".join(self.code(v, top) for v in value)
            return f"({inner},)" if isinstance(value, tuple) else f"[{inner}]"
        raise CompileError(
            f"standalone export: {_user(self.step.graph, self.step.program, top)} uses a "
            f"constant of type {type(value).__module__}.{type(value).__qualname__}, which "
            f"cannot be written as numpy arrays and Python literals")


def _value_code(value: Any) -> str:
    if isinstance(value, np.generic):
        return f"np.{type(value).__name__}({_value_code(value.item())})"
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


class _Renderer:
    def __init__(self, step: StandaloneStep) -> None:
        self.step = step
        every = [*step.inputs, *step.extra]
        self.examples = {inp.name: inp.value for inp in every if inp.kind == "argument"}
        self.params = dict(zip(self.examples, _identifiers(list(self.examples)), strict=True))
        self.state = {inp.name: inp.value for inp in every if inp.kind == "state"}
        self.updated = {step.inputs[j].name for j, _ in step.updates}

    def input_code(self, inp: StandaloneInput) -> str:
        return self.params[inp.name] if inp.kind == "argument" else f"state[{inp.name!r}]"

    def returned_code(self, r: Returned | ReturnedContainer) -> str:
        if isinstance(r, ReturnedContainer):
            items = [self.returned_code(x) for x in r.items]
            if r.kind == "dict":
                return "{" + ", ".join(f"{_key_literal(k)}: {v}" for k, v in zip(
                    r.keys, items, strict=True)) + "}"
            inner = ", ".join(items)
            return f"[{inner}]" if r.kind == "list" else \
                (f"({inner},)" if len(items) == 1 else f"({inner})")
        if r.kind == "output":
            return f"np.array(outs[{r.index}], copy=True)" if r.copy else f"outs[{r.index}]"
        if r.kind == "argument":
            return self.params[r.name]
        if r.kind == "state":
            return f"state[{r.name!r}]"
        return _value_code(r.value)

    def returned_doc(self, r: Returned | ReturnedContainer) -> str:
        if isinstance(r, ReturnedContainer):
            items = [self.returned_doc(x) for x in r.items]
            if r.kind == "dict":
                items = [f"{k!r}: {v}" for k, v in zip(r.keys, items, strict=True)]
                return "{" + ", ".join(items) + "}"
            return ("[{}]" if r.kind == "list" else "({})").format(", ".join(items))
        if r.kind == "output":
            return _type(self.step.graph.outputs[r.index])
        if r.kind in ("argument", "state"):
            what = "argument" if r.kind == "argument" else "state"
            return f"{what} {r.name} itself"
        return _value_code(r.value)

    def argument_doc(self) -> list[str]:
        lines = []
        for name, ident in self.params.items():
            value = self.examples[name]
            notes = [f"argument {name}"] if ident != name else []
            if name in self.updated:
                notes.append("updated in place")
            lines.append(f"{ident}: {_type(value)}" + (f" ({', '.join(notes)})" if notes else ""))
        return lines

    def state_doc(self) -> list[str]:
        return [f"{key}: {_type(value)}" + (" (updated in place)" if key in self.updated else "")
                for key, value in self.state.items()]

    def grad_doc(self) -> list[str]:
        outputs = self.step.graph.outputs
        return [f"{key}: {_type(outputs[k])}" if k is not None else f"{key}: removed"
                for key, k, _ in self.step.grad_writes]


def render_standalone(step: StandaloneStep, npz_name: str) -> tuple[str, dict[str, np.ndarray]]:
    """The module's source and the arrays of its ``.npz`` (see the module docstring)."""
    _effects(step.graph, step.program)
    bundle = Bundle()
    bundle.reserve(list(_MODULE_NAMES), "the standalone module")
    for line in ("import threading", "from pathlib import Path"):
        bundle.reserve([line.split()[-1]], line)
        bundle.imports.append(line)
    kernels = {op: bundle.add_kernel(op, impl) for op, impl in step.program.kernels.items()}
    constants = _Constants(step)
    const_code = [constants.code(c, c) for c in step.program.consts]
    r = _Renderer(step)
    arrays = {f"state/{key}": value for key, value in r.state.items()}
    arrays |= {f"example/{name}": np.asarray(r.examples[name]) for name in r.params}
    arrays |= constants.arrays
    checks = [(r.params[name], name, tuple(r.examples[name].shape),
               np.dtype(r.examples[name].dtype).str) for name in r.params]
    source = _ENV.get_template("standalone.py.j2").render(
        name=_text(step.name), kind="training step" if step.training else "function",
        npz_name=_text(npz_name), npz_file=npz_name, arguments=r.argument_doc(),
        state_doc=r.state_doc(),
        grads=r.grad_doc(), returns_doc=_text(r.returned_doc(step.returns)),
        text=_text, imports=_imports(bundle.import_lines()), bundle=bundle.body(),
        kernels=kernels,
        program=step.program.source,
        buffers=[(tuple(shape), np.dtype(dtype).str, order)
                 for shape, dtype, order in step.program.buffers],
        consts=const_code, params=list(r.params.values()),
        arg_names=list(r.params), checks=checks,
        state_specs=[(key, tuple(v.shape), np.dtype(v.dtype).str) for key, v in r.state.items()],
        inputs=[r.input_code(inp) for inp in step.inputs], updates=step.updates,
        grad_writes=step.grad_writes, returns=r.returned_code(step.returns))
    return source, arrays


def write_standalone(path: str | Path, step: StandaloneStep) -> Path:
    """Write ``step`` as the module ``path`` (``.py``) and its arrays as ``.npz`` beside it;
    returns the module's path."""
    path = Path(path)
    if path.suffix != ".py":
        raise ValueError(f"standalone export: the path must name a .py file, got {str(path)!r}")
    npz = path.with_suffix(".npz")
    source, arrays = render_standalone(step, npz.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(npz, "wb") as f:
        np.savez(f, **arrays)
    path.write_text(source, encoding="utf-8")
    return path
