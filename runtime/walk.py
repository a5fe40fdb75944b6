"""Where a traced function's state lives: the objects it can reach, their names, their changes.

``reach(fn, arguments)`` walks what ``fn`` can reach (its closure cells, the globals its code
names, default arguments, ``self`` of a bound method, a ``functools.partial``'s arguments, a
callable object's attributes, and recursively attributes of modules, optimizers and plain
objects, lists, tuples and dicts, and functions found on the way) and returns a ``Reach``:

- ``places``: every leaf found (a tensor, an array, a Python scalar, a string, None, a
  function) with the ``Place`` where it was found (``model.fc1.weight``, ``cfg['scale']``);
- ``names``: the first place of each tensor and array, to name graph inputs;
- ``containers``: every walked object, list, dict, cell and global, so that ``snapshot()`` can
  record their shallow contents and ``Snapshot.changes()`` can tell what a trace changed.

The walk only names things and builds guards; a tensor the walk misses is still an input by
reference (captured when an op reads it).
"""

from __future__ import annotations

import dis
import functools
import keyword
import math
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .tensor import Tensor

#: leaves compared by value
SCALARS = (bool, int, float, str, np.bool_, np.integer, np.floating)
#: code the walk follows into (closures, globals, defaults) and guards by identity
FUNCTIONS = (types.FunctionType, types.MethodType, functools.partial)
_OPAQUE = (types.ModuleType, type, types.BuiltinFunctionType, types.BuiltinMethodType,
           np.random.Generator, np.dtype, bytes, complex, range, slice)
_MAX_DEPTH = 12


@dataclass(frozen=True, slots=True)
class Place:
    """How to reach an object again: a root held directly, then attribute/item/cell steps."""

    root: Any
    name: str
    steps: tuple[tuple[str, Any], ...] = ()

    def child(self, kind: str, key: Any) -> Place:
        """The place of attribute (``kind="attr"``) or item (``"item"``) ``key`` of this one."""
        if kind == "attr":
            name = f"{self.name}.{key}"
        else:
            name = f"{self.name}[{key!r}]" if self.name else str(key)
        return Place(self.root, name, (*self.steps, (kind, key)))

    def expr(self, root: str, bind: Callable[[Any], str]) -> str:
        """Python source reaching this place from the name ``root`` (keys bound by ``bind``)."""
        code = root
        for kind, key in self.steps:
            if kind == "cell":
                code += ".cell_contents"
            elif kind == "attr":
                ok = key.isidentifier() and not keyword.iskeyword(key) and key.isascii()
                code += f".{key}" if ok else f"getattr({code}, {bind(key)})"
            elif isinstance(key, int) and not isinstance(key, bool):
                code += f"[{key}]"
            else:
                code += f"[{bind(key)}]"
        return code


@dataclass
class Reach:
    """What a walk found (see the module docstring)."""

    places: list[tuple[Place, Any]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    containers: list[tuple[Any, str, tuple, str]] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set)

    def tensors(self) -> Iterator[tuple[Place, Tensor]]:
        return ((p, v) for p, v in self.places if isinstance(v, Tensor))


def _library(fn: Any) -> bool:
    """Functions of aprender itself, numpy and the standard library read no user state."""
    module = getattr(fn, "__module__", None) or ""
    return module.split(".")[0] in {"aprender", "numpy", "functools", "builtins", "typing"}


def _code_names(code: types.CodeType) -> set[str]:
    """The global names ``code`` (and the functions defined in it) load."""
    names = {i.argval for i in dis.get_instructions(code)
             if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


class _Walker:
    def __init__(self) -> None:
        self.reach = Reach()

    def leaf(self, place: Place, value: Any) -> None:
        self.reach.places.append((place, value))
        if isinstance(value, Tensor | np.ndarray):
            self.reach.names.setdefault(id(value), place.name)

    def visit(self, place: Place, value: Any, depth: int) -> None:
        if value is None or isinstance(value, (*SCALARS, Tensor, np.ndarray)):
            self.leaf(place, value)
            return
        if isinstance(value, _OPAQUE) or depth > _MAX_DEPTH:
            return
        if id(value) in self.reach._seen:
            if callable(value):
                self.leaf(place, value)
            return
        self.reach._seen.add(id(value))
        if isinstance(value, list | tuple):
            self.reach.containers.append((value, "seq", tuple(value), place.name))
            self.leaf(place, value)
            for i, item in enumerate(value):
                self.visit(place.child("item", i), item, depth + 1)
        elif isinstance(value, dict):
            self.reach.containers.append((value, "dict", tuple(value.items()), place.name))
            self.leaf(place, value)
            for key, item in list(value.items()):
                if isinstance(key, str | int):
                    self.visit(place.child("item", key), item, depth + 1)
        elif isinstance(value, FUNCTIONS):
            self.leaf(place, value)
            self.function(place, value, depth + 1)
        elif hasattr(value, "__dict__"):
            self.obj(place, value, depth + 1)

    def obj(self, place: Place, value: Any, depth: int) -> None:
        attrs = vars(value)
        self.reach.containers.append((attrs, "attrs", tuple(attrs.items()), place.name))
        self.leaf(place, value)
        for key, item in list(attrs.items()):
            if not key.startswith("__"):
                self.visit(place.child("attr", key), item, depth)
        kind = type(value)
        for name in dir(kind):  # class-level flags and numbers (``Module.training``)
            if not name.startswith("__") and name not in attrs:
                item = getattr(kind, name, None)
                if item is None or isinstance(item, SCALARS):
                    self.leaf(place.child("attr", name), item)
        if not _library(kind):  # a user class: its methods' globals are read too
            for item in vars(kind).values():
                if isinstance(item, types.FunctionType):
                    self.function(Place(item, f"{kind.__name__}.{item.__name__}"), item, depth)

    def function(self, place: Place, fn: Any, depth: int) -> None:
        if isinstance(fn, types.MethodType):
            self.visit(Place(fn, "self", (("attr", "__self__"),)), fn.__self__, depth)
            fn = fn.__func__
        if isinstance(fn, functools.partial):
            self.visit(place.child("attr", "func"), fn.func, depth)
            self.visit(place.child("attr", "args"), fn.args, depth)
            self.visit(place.child("attr", "keywords"), fn.keywords, depth)
            return
        if not isinstance(fn, types.FunctionType) or _library(fn):
            return
        code = fn.__code__
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self.reach.containers.append((cell, "cell", (contents,), name))
            self.visit(Place(cell, name, (("cell", None),)), contents, depth)
        glb = fn.__globals__
        names = tuple(sorted(n for n in _code_names(code) if n in glb))
        if names:
            self.reach.containers.append((glb, "globals", tuple((n, glb[n]) for n in names), ""))
        for name in names:
            self.visit(Place(glb, name, (("item", name),)), glb[name], depth)
        if fn.__defaults__:
            self.visit(Place(fn, f"{fn.__name__}.__defaults__", (("attr", "__defaults__"),)),
                       fn.__defaults__, depth)
        if fn.__kwdefaults__:
            self.visit(Place(fn, f"{fn.__name__}.__kwdefaults__",
                             (("attr", "__kwdefaults__"),)), fn.__kwdefaults__, depth)


def reach(fn: Any, arguments: list[tuple[str, Any]]) -> Reach:
    """Walk ``fn`` and the named ``arguments`` objects (modules, optimizers passed in)."""
    walker = _Walker()
    for name, value in arguments:
        walker.visit(Place(value, name), value, 0)
    if isinstance(fn, FUNCTIONS):
        walker.function(Place(fn, ""), fn, 0)
    else:  # a module or a callable object
        label = "model" if hasattr(fn, "forward") else "self"
        walker.visit(Place(fn, label), fn, 0)
        call = getattr(type(fn), "forward", None) or vars(type(fn)).get("__call__")
        if isinstance(call, types.FunctionType):
            walker.function(Place(call, label), call, 1)
    return walker.reach


# --- what a trace changed -------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, SCALARS) and isinstance(b, SCALARS) and type(a) is type(b):
        if isinstance(a, float | np.floating) and a == 0 and b == 0:
            return math.copysign(1.0, a) == math.copysign(1.0, b)
        return bool(a == b) or (a != a and b != b)
    return False


@dataclass
class Snapshot:
    """Shallow contents of every walked container, and every walked tensor's grad flag."""

    containers: list[tuple[Any, str, tuple, str]]
    flags: list[tuple[Tensor, bool]]

    @staticmethod
    def take(found: Reach) -> Snapshot:
        seen: set[int] = set()
        flags = []
        for _, t in found.tensors():
            if id(t) not in seen:
                seen.add(id(t))
                flags.append((t, t._rg))
        return Snapshot(list(found.containers), flags)

    def changes(self) -> list[str]:
        """``what: old -> new`` for every difference between then and now."""
        out = []
        for container, kind, old, label in self.containers:
            now = _contents(container, kind, old)
            if len(now) != len(old) or not all(
                    _same(a, b) for a, b in zip(_values(old, kind), _values(now, kind),
                                                strict=True)):
                out.append(_describe_change(label, kind, old, now))
        out += [f"requires_grad of a {t.dtype} tensor {list(t.shape)}: {rg} -> {t._rg}"
                for t, rg in self.flags if t._rg != rg]
        return out

    def restore(self) -> None:
        """Put every container's shallow contents and every flag back."""
        for container, kind, old, _ in self.containers:
            if kind == "cell":
                container.cell_contents = old[0]
            elif kind == "globals":
                container.update(old)
            elif kind in ("dict", "attrs"):
                container.clear()
                container.update(old)
            elif isinstance(container, list):
                container[:] = old
        for t, rg in self.flags:
            t._rg = rg


def _contents(container: Any, kind: str, old: tuple) -> tuple:
    if kind == "cell":
        try:
            return (container.cell_contents,)
        except ValueError:
            return ()
    if kind == "globals":
        return tuple((n, container.get(n, _MISSING)) for n, _ in old)
    if kind in ("dict", "attrs"):
        return tuple(container.items())
    return tuple(container)


def _values(items: tuple, kind: str) -> list:
    if kind in ("dict", "attrs", "globals"):
        return [x for pair in items for x in pair]
    return list(items)


_MISSING = object()


def _show(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"tensor {value.dtype}{list(value.shape)}"
    if isinstance(value, SCALARS) or value is None:
        return repr(value)[:40]
    return f"<{type(value).__name__}>"


def _describe_change(label: str, kind: str, old: tuple, now: tuple) -> str:
    if kind == "cell":
        return f"{label}: {_show(old[0])} -> {_show(now[0]) if now else '(empty)'}"
    if kind in ("dict", "attrs", "globals"):
        before, after = dict(old), dict(now)
        for key in list(before) + [k for k in after if k not in before]:
            a, b = before.get(key, _MISSING), after.get(key, _MISSING)
            if not _same(a, b):
                what = "(missing)" if a is _MISSING else _show(a)
                new = "(missing)" if b is _MISSING else _show(b)
                where = f"{label}.{key}" if kind == "attrs" else \
                    (f"{label}[{key!r}]" if label else str(key))
                return f"{where}: {what} -> {new}"
    return f"{label}: {len(old)} items -> {len(now)} items"
