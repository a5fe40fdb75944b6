"""Check mode: run the eager function beside a compiled call and raise at the first difference.

``run_checked`` saves every tensor the function can reach (values, version counters,
gradients, ``requires_grad``) and the Python state around them, runs ``fn`` eagerly, records
its results and the state it left, puts everything back, runs the compiled call, and compares
results, tensor values and gradients (float64 to 1e-10 relative, float32 to 1e-5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import CompileError
from . import pytree
from .tensor import Tensor
from .walk import Reach, Snapshot, reach


def _tensors(found: Reach, leaves: list) -> list[tuple[str, Tensor]]:
    """Every tensor a call can touch: tensor arguments, then the walked ones, each once."""
    seen: set[int] = set()
    out = []
    for name, t in [(f"args[{i}]", x) for i, x in enumerate(leaves) if isinstance(x, Tensor)] \
            + [(p.name, t) for p, t in found.tensors()]:
        if id(t) not in seen:
            seen.add(id(t))
            out.append((name, t))
    return out


def _state(tensors: list[tuple[str, Tensor]]) -> list[tuple]:
    return [(t, t._data.copy(), t._vc[0], t._rg, t._grad,
             None if t._grad is None else t._grad._data.copy()) for _, t in tensors]


def _restore(saved: list[tuple]) -> None:
    for t, data, version, rg, grad, grad_data in saved:
        np.copyto(t._data, data)
        t._vc[0], t._rg, t._grad = version, rg, grad
        if grad is not None:
            np.copyto(grad._data, grad_data)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    rtol = 1e-10 if a.dtype == np.float64 else 1e-5
    scale = float(np.max(np.abs(a), initial=0.0)) if a.size else 0.0
    return bool(np.allclose(a, b, rtol=rtol, atol=rtol * max(scale, 1e-30), equal_nan=True))


def _show(t: Tensor) -> str:
    return np.array2string(t._data, threshold=6, precision=6)


def _compare(where: str, eager: Any, compiled: Any) -> str | None:
    if isinstance(eager, Tensor) or isinstance(compiled, Tensor):
        if not (isinstance(eager, Tensor) and isinstance(compiled, Tensor)):
            return f"{where}: {type(eager).__name__} vs {type(compiled).__name__}"
        if eager._rg != compiled._rg:
            return f"{where}: requires_grad {eager._rg} vs {compiled._rg}"
        if _close(eager._data, compiled._data):
            return None
        return f"{where}: values differ ({_show(eager)} eagerly, {_show(compiled)} compiled)"
    if type(eager) is not type(compiled):
        return f"{where}: {type(eager).__name__} vs {type(compiled).__name__}"
    return None


def run_checked(fn: Callable, call: Callable[[tuple, dict], Any], args: tuple,
                kwargs: dict) -> Any:
    """``call(args, kwargs)`` (the compiled call), checked against ``fn`` run eagerly."""
    _, leaves = pytree.key_of(args, kwargs)
    found = reach(fn, [(f"args[{i}]", x) for i, x in enumerate(leaves)
                       if pytree.by_reference(x)])
    tensors = _tensors(found, leaves)
    python = Snapshot.take(found)
    before = _state(tensors)
    arrays = [(x, x.copy()) for x in leaves if isinstance(x, np.ndarray)]
    eager_result = fn(*args, **kwargs)
    eager_leaves: list = []
    pytree.flatten(eager_result, eager_leaves)
    eager_leaves = [_copy(x) for x in eager_leaves]
    after = [(name, t._data.copy(), None if t._grad is None else t._grad._data.copy())
             for name, t in tensors]
    _restore(before)
    python.restore()
    for x, data in arrays:
        np.copyto(x, data)
    result = call(args, kwargs)
    got: list = []
    pytree.flatten(result, got)
    problems = [] if len(got) == len(eager_leaves) else ["results: structure differs"]
    problems += [p for i, (e, c) in enumerate(zip(eager_leaves, got, strict=False))
                 if (p := _compare(f"result {i}", e, c)) is not None]
    for (name, t), (_, data, grad) in zip(tensors, after, strict=True):
        if not _close(data, t._data):
            problems.append(f"{name}: values differ")
        if (grad is None) != (t._grad is None):
            problems.append(f"{name}.grad(): {'None' if grad is None else 'set'} eagerly, "
                            f"{'None' if t._grad is None else 'set'} compiled")
        elif grad is not None and not _close(grad, t._grad._data):
            problems.append(f"{name}.grad(): values differ")
    if problems:
        raise CompileError("compile check: the compiled call differs from the eager call: "
                           + "; ".join(problems[:5]))
    return result


def _copy(x: Any) -> Any:
    if isinstance(x, Tensor):
        from .tensor import _wrap

        out = _wrap(x._data.copy(), None, False)
        out._rg = x._rg
        return out
    return x
