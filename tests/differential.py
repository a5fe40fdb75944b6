"""Differential harness for ``ap.compile``: a compiled call must do what the eager call does.

SPEC: a compiled call returns what the eager call would have returned and leaves every object in
the state the eager call would have left it, or it raises a clear ``AprenderError`` saying why it
cannot; never a silently different result. ``run_differential`` builds two identical worlds,
runs ``fn`` eagerly in world A and ``ap.compile(fn)`` in world B, and after every call compares
results (of this call and of every earlier call, still held by the caller) and every object
reachable from ``state``: values, dtypes, shapes, ``grad()``, ``requires_grad_enabled()``,
``is_leaf()`` and object identity (which of them are the same object).
"""

from __future__ import annotations

import contextlib
import functools
import math
import types
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

import aprender as ap
from aprender.errors import AprenderError

_COMPILED = type(ap.compile(lambda: None))
_OPAQUE = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.ModuleType,
           type, functools.partial, _COMPILED)
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


@dataclass
class Program:
    """One user pattern. ``state`` holds every object whose state must match (modules,
    optimizers, tensors, arrays, containers, plain objects). ``args(i)`` gives ``(args, kwargs)``
    for call ``i`` and is called once per world, so it may hand out that world's own objects.
    ``between(i, state)`` is the user changing things before call ``i``; at that point
    ``state["_args"]`` is the previous call's ``(args, kwargs)`` (the harness keeps the latest
    call's arguments there, so they are compared too). ``call_context(i)`` is a context manager
    the call runs inside (``ap.no_grad()``, ``ap.detect_anomaly()``); ``mutate_results`` makes
    the caller add 1 in place to every float leaf tensor returned, before the next call."""

    fn: Callable
    state: dict[str, Any]
    args: Callable[[int], tuple[tuple, dict]]
    between: Callable[[int, dict], None] | None = None
    mutate_results: bool = False
    call_context: Callable[[int], AbstractContextManager] | None = None


class _Compare:
    """Walks an eager and a compiled object graph side by side and collects differences."""

    def __init__(self, rtol: float | None) -> None:
        self.rtol, self.diffs = rtol, []
        self.seen: dict[int, tuple[int, str]] = {}  # id(eager) -> (id(compiled), first path)
        self.seen_b: dict[int, str] = {}
        self.keep: list[Any] = []  # keeps compared temporaries alive so ids stay unique

    def arrays(self, a: np.ndarray, b: np.ndarray, path: str) -> None:
        if a.dtype != b.dtype or a.shape != b.shape:
            self.diffs.append(f"{path}: eager {a.dtype}{list(a.shape)}, compiled "
                              f"{b.dtype}{list(b.shape)}")
        elif a.dtype.kind not in "fc":
            if not np.array_equal(a, b):
                self.diffs.append(f"{path}: values differ: eager {a!r}, compiled {b!r}")
        else:
            rtol, atol = (1e-10, 1e-12) if a.dtype.itemsize >= 8 else (1e-5, 1e-6)
            close = np.isclose(b, a, rtol=self.rtol or rtol, atol=atol, equal_nan=True)
            zeros = (a == 0) & (b == 0)
            if not close.all():
                k = np.unravel_index(np.argmin(close), a.shape) if a.ndim else ()
                self.diffs.append(f"{path}: values differ (at {list(k)}: eager {a[k]!r}, "
                                  f"compiled {b[k]!r})")
            elif (np.signbit(a) != np.signbit(b))[zeros].any():
                self.diffs.append(f"{path}: sign of zero differs: eager {a!r}, compiled {b!r}")

    def tensor(self, a: ap.Tensor, b: ap.Tensor, path: str) -> None:
        self.arrays(a.data(), b.data(), path)
        for what in ("requires_grad_enabled", "is_leaf"):
            if getattr(a, what)() != getattr(b, what)():
                self.diffs.append(f"{path}: {what}() eager {getattr(a, what)()}, compiled "
                                  f"{getattr(b, what)()}")
        self(a.grad(), b.grad(), f"{path}.grad()")

    def identity(self, a: Any, b: Any, path: str) -> bool:
        """Whether ``a``/``b`` still have to be compared (first visit with a consistent pairing)."""
        first_a, first_b = self.seen.get(id(a)), self.seen_b.get(id(b))
        if first_a is None and first_b is None:
            self.seen[id(a)], self.seen_b[id(b)] = (id(b), path), path
            self.keep += [a, b]
            return True
        if first_a is None or first_b is None or first_a[0] != id(b):
            self.diffs.append(f"{path}: identity differs: eager object is "
                              f"{first_a[1] if first_a else 'new'}, compiled object is "
                              f"{first_b or 'new'}")
        return False

    def __call__(self, a: Any, b: Any, path: str) -> None:
        if type(a) is not type(b):
            self.diffs.append(f"{path}: eager {type(a).__name__} {a!r:.60}, compiled "
                              f"{type(b).__name__} {b!r:.60}")
        elif isinstance(a, float) and not (math.isnan(a) and math.isnan(b)):
            if not math.isclose(a, b, rel_tol=self.rtol or 1e-10, abs_tol=1e-12) or (
                    a == 0 and math.copysign(1, a) != math.copysign(1, b)):
                self.diffs.append(f"{path}: eager {a!r}, compiled {b!r}")
        elif isinstance(a, _SCALARS):
            if a != b and a == a:
                self.diffs.append(f"{path}: eager {a!r}, compiled {b!r}")
        elif isinstance(a, np.generic):
            self.arrays(np.asarray(a), np.asarray(b), path)
        elif isinstance(a, tuple):
            self.sequence(a, b, path)
        elif isinstance(a, _OPAQUE) or not self.identity(a, b, path):
            return
        elif isinstance(a, ap.Tensor):
            self.tensor(a, b, path)
        elif isinstance(a, np.ndarray):
            self.arrays(a, b, path)
        elif isinstance(a, np.random.Generator):
            if a.bit_generator.state != b.bit_generator.state:
                self.diffs.append(f"{path}: random generator states differ")
        elif isinstance(a, list):
            self.sequence(a, b, path)
        elif isinstance(a, dict):
            if list(a) != list(b):
                self.diffs.append(f"{path}: keys eager {list(a)}, compiled {list(b)}")
            for k in a if list(a) == list(b) else ():
                self(a[k], b[k], f"{path}[{k!r}]")
        else:
            self.attributes(a, b, path)

    def sequence(self, a: list | tuple, b: list | tuple, path: str) -> None:
        if len(a) != len(b):
            self.diffs.append(f"{path}: length eager {len(a)}, compiled {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            self(x, y, f"{path}[{i}]")

    def attributes(self, a: Any, b: Any, path: str) -> None:
        """Plain objects: every attribute in ``__dict__`` and ``__slots__``, private ones too."""
        def attrs(obj: Any) -> dict[str, Any]:
            found = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
            for cls in type(obj).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    if hasattr(obj, name) and name not in ("__weakref__", "__dict__"):
                        found[name] = getattr(obj, name)
            return {k: v for k, v in found.items() if not k.startswith("__")}
        va, vb = attrs(a), attrs(b)
        if not hasattr(a, "__dict__") and not va and a != b:  # a value object (np.dtype, ...)
            self.diffs.append(f"{path}: eager {a!r:.60}, compiled {b!r:.60}")
        if sorted(va) != sorted(vb):
            self.diffs.append(f"{path}: attributes eager {sorted(va)}, compiled {sorted(vb)}")
        for k in sorted(set(va) & set(vb)):
            self(va[k], vb[k], f"{path}.{k}")


def _diffs(held_a: list, held_b: list, a: Program, b: Program, rtol: float | None) -> list[str]:
    """Differences between the results the caller holds and between the two worlds' state."""
    cmp = _Compare(rtol)
    for k, (ra, rb) in enumerate(zip(held_a, held_b, strict=True)):
        cmp(ra, rb, f"result#{k}")
    for key in a.state:
        cmp(a.state[key], b.state.get(key), f"state[{key!r}]")
    return cmp.diffs


def _call(fn: Callable, p: Program, i: int,
          args: tuple[tuple, dict]) -> tuple[Any, Exception | None]:
    """Call ``fn`` inside the program's call context; its result or the exception it raised."""
    ctx = p.call_context(i) if p.call_context else contextlib.nullcontext()
    try:
        with ctx:
            return fn(*args[0], **args[1]), None
    except Exception as e:  # compared against the other world below
        return None, e


def _mutate(result: Any) -> str:
    """The caller adds 1 in place to each float leaf tensor in ``result``; what each raised."""
    if isinstance(result, list | tuple | dict):
        items = result.values() if isinstance(result, dict) else result
        return "".join(_mutate(r) for r in items)
    if isinstance(result, ap.Tensor) and result.is_leaf() and result.dtype.kind == "f":
        try:
            with ap.no_grad():
                result.add_(1.0)
        except AprenderError as e:
            return type(e).__name__
    return "."


def _fail(i: int, what: str, diffs: list[str]) -> AssertionError:
    shown = diffs[:10] + ([f"... {len(diffs) - 10} more"] if len(diffs) > 10 else [])
    return AssertionError(f"call {i}: {what}:\n  " + "\n  ".join(shown))


def run_differential(build: Callable[[], Program], calls: int = 4, *, may_refuse: bool = False,
                     rtol: float | None = None) -> str:
    """Run ``build()``'s program eagerly (world A, built first) and compiled (world B, built
    second) for ``calls`` calls; return ``"equal"``, or ``"refused"`` when ``may_refuse`` and the
    compiled call raised an ``AprenderError`` (before any difference and leaving the state as
    it was). Raise ``AssertionError`` naming the call and the paths that differ otherwise."""
    a, b = build(), build()
    fast = ap.compile(b.fn)
    held_a: list[Any] = []
    held_b: list[Any] = []
    for i in range(calls):
        for p in (a, b):
            if p.between is not None:
                p.between(i, p.state)
        a.state["_args"], b.state["_args"] = a.args(i), b.args(i)
        out_b, err_b = _call(fast, b, i, b.state["_args"])
        before = _diffs(held_a, held_b, a, b, rtol) if err_b is not None else []
        out_a, err_a = _call(a.fn, a, i, a.state["_args"])
        if err_b is not None and not (err_a is not None and isinstance(err_b, type(err_a))):
            if isinstance(err_b, AprenderError) and may_refuse:  # a refusal (eager may raise)
                if before:
                    raise _fail(i, f"compiled refused ({err_b!r:.200}) but changed state", before)
                return "refused"
            eager = "returned" if err_a is None else f"raised {err_a!r:.200}"
            raise AssertionError(f"call {i}: compiled raised {err_b!r}; eager {eager}") from err_b
        if err_a is not None and err_b is None:
            raise AssertionError(f"call {i}: eager raised {err_a!r}, compiled returned "
                                 f"{out_b!r:.200}") from err_a
        held_a.append(out_a)
        held_b.append(out_b)
        diffs = _diffs(held_a, held_b, a, b, rtol)
        if diffs:
            raise _fail(i, "compiled differs from eager", diffs)
        if a.mutate_results and i + 1 < calls and _mutate(out_a) != _mutate(out_b):
            raise AssertionError(f"call {i}: an in-place edit of a result works in one world only")
    return "equal"
