"""Guards: the checks a cached compiled entry runs before each call, compiled into one function.

Each ``Guard`` is one readable condition (``model.fc1.weight is <tensor float32[4, 8]>``,
``cfg['scale'] == 2.0``, ``model.fc1.weight has a gradient``) with the Python expression that
checks it. ``GuardSet.compile()`` joins every expression into one generated function of the
call's argument leaves ``L``, so a hit costs one call; ``explain()`` runs them one by one to say
which failed, what it expected and what it found.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engine import hook_ids, hook_registry
from .tensor import GradState, grad_state
from .walk import Place


@dataclass(frozen=True)
class Guard:
    """One condition: ``text`` for people, ``expr`` (Python) for the check, ``read`` the
    expression of what it reads (shown as ``old -> new`` when the guard fails)."""

    text: str
    expr: str
    read: str
    expected: str


def _show(value: Any) -> str:
    from .tensor import Tensor

    if isinstance(value, Tensor):
        return f"<tensor {value.dtype}{list(value.shape)} at {id(value):#x}>"
    if isinstance(value, np.ndarray):
        return f"<array {value.dtype}{list(value.shape)} at {id(value):#x}>"
    if callable(value):
        return f"<function {getattr(value, '__qualname__', type(value).__name__)}>"
    return repr(value)[:60]


def same_array(a: Any, b: np.ndarray) -> bool:
    """``a`` is a numpy array of ``b``'s shape, dtype and values (nan equal to nan)."""
    return type(a) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype and \
        np.array_equal(a, b, equal_nan=b.dtype.kind in "fc")


@dataclass
class GuardSet:
    """Guards of one compiled entry and the objects their expressions refer to."""

    guards: list[Guard] = field(default_factory=list)
    bound: dict[str, Any] = field(default_factory=dict)
    _ids: dict[int, str] = field(default_factory=dict)

    def bind(self, obj: Any) -> str:
        """A name for ``obj`` in the generated check (the object is held by the entry)."""
        name = self._ids.get(id(obj))
        if name is None:
            name = self._ids[id(obj)] = f"o{len(self.bound)}"
            self.bound[name] = obj
        return name

    def _at(self, place: Place) -> str:
        return place.expr(self.bind(place.root), self.bind)

    def identity(self, place: Place, obj: Any) -> None:
        at = self._at(place)
        self.guards.append(Guard(f"{place.name} is {_show(obj)}", f"{at} is {self.bind(obj)}",
                                 at, _show(obj)))

    def value(self, place: Place, value: Any) -> None:
        at = self._at(place)
        if value is None or isinstance(value, bool):
            expr = f"{at} is {value!r}"
        elif isinstance(value, float) and math.isnan(value):
            expr = f"{at} != {at}"
        elif isinstance(value, float) and value == 0.0:
            expr = f"({at} == 0.0 and copysign(1.0, {at}) == {math.copysign(1.0, value)!r})"
        else:
            expr = f"{at} == {self.bind(value)}"
        self.guards.append(Guard(f"{place.name} == {_show(value)}", expr, at, _show(value)))

    def array_values(self, place: Place, array: np.ndarray) -> None:
        """A numpy array the function reached but did not pass to a tensor op: numpy code
        inside the function may have read it, so its values (and shape and dtype) are guarded
        against a copy."""
        at, copy = self._at(place), np.array(array, copy=True)
        self.guards.append(Guard(f"{place.name} has the values it had when traced",
                                 f"{self.bind(same_array)}({at}, {self.bind(copy)})", at,
                                 _show(copy)))

    def hooks_unchanged(self, name: str, obj: str, leaf: Any) -> None:
        """``obj`` (the leaf ``leaf``) has the gradient-ready hooks it had when traced (its
        backward ran them: DDP's all-reduces are in the graph)."""
        fn, expected = self.bind(hook_ids), hook_ids(leaf)
        check = f"{fn}({obj}) == {expected!r}"
        if not expected:  # the common case, without a call: no hook registered for it
            check = f"(id({obj}) not in {self.bind(hook_registry())} or {check})"
        self.guards.append(Guard(f"{name} has the gradient-ready hooks of the trace", check,
                                 f"{fn}({obj})", repr(expected)))

    def length(self, place: Place, n: int) -> None:
        at = self._at(place)
        self.guards.append(Guard(f"len({place.name}) == {n}", f"len({at}) == {n}",
                                 f"len({at})", str(n)))

    def argument_is(self, i: int, obj: Any) -> None:
        """Argument leaf ``i`` is ``obj`` (a module, optimizer or function passed in)."""
        kind = type(obj).__name__
        self.guards.append(Guard(f"argument {i} is the same {kind}",
                                 f"L[{i}] is {self.bind(obj)}", f"L[{i}]", f"<{kind}>"))

    def same_arguments(self, i: int, j: int) -> None:
        """Argument leaves ``i`` and ``j`` are one object (as they were when traced)."""
        self.guards.append(Guard(f"argument {i} is argument {j}", f"L[{i}] is L[{j}]",
                                 f"L[{i}]", f"L[{j}]"))

    def attribute(self, name: str, obj: str, attr: str, expected: Any) -> None:
        """``obj.attr is expected`` where ``obj`` is an expression (``L[0]``, a bound name)."""
        self.guards.append(Guard(f"{name}.{attr} is {expected!r}", f"{obj}.{attr} is "
                                 f"{expected!r}", f"{obj}.{attr}", repr(expected)))

    def grad_state(self, name: str, obj: str, state: GradState) -> None:
        """``obj``'s gradient is absent, owned (accumulated in place) or other (replaced)."""
        fn, expected = self.bind(grad_state), self.bind(state)
        self.guards.append(Guard(f"{name} {state.value}", f"{fn}({obj}) is {expected}",
                                 f"{fn}({obj})", repr(state)))

    def compile(self) -> Callable[[list], bool]:
        """One function ``check(L) -> bool`` testing every guard in order."""
        body = " and\n            ".join(g.expr for g in self.guards) or "True"
        source = (f"def check(L):\n    try:\n        return bool({body})\n"
                  f"    except Exception:\n        return False\n")
        namespace: dict[str, Any] = {"copysign": math.copysign, **self.bound}
        exec(compile(source, "<aprender guards>", "exec"), namespace)  # our own generated code
        return namespace["check"]

    def explain(self, leaves: list) -> str | None:
        """``text: expected -> found`` for the first guard that fails now, or None."""
        namespace = {"copysign": math.copysign, "L": leaves, **self.bound}
        for g in self.guards:
            try:
                ok = bool(eval(g.expr, namespace))  # noqa: S307 - our own generated expression
            except Exception as e:  # the place is gone
                return f"{g.text}: {g.expected} -> ({type(e).__name__}: {e})"
            if not ok:
                try:
                    found = _show(eval(g.read, namespace))  # noqa: S307
                except Exception as e:
                    found = f"({type(e).__name__})"
                return f"{g.text}: {g.expected} -> {found}"
        return None

    def __str__(self) -> str:
        return "\n".join(g.text for g in self.guards)
