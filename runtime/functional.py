"""Free functions over several tensors: maximum, minimum, where, concat, stack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ShapeError, with_location
from ..ir.ops import shape as shape_ops
from .tensor import Tensor, apply


def _tensor(value: Any, like: Tensor | None = None) -> Tensor:
    if isinstance(value, Tensor):
        return value
    return like._coerce(value) if like is not None else Tensor(value)


def _first_tensor(*values: Any) -> Tensor | None:
    return next((v for v in values if isinstance(v, Tensor)), None)


def maximum(a: Any, b: Any) -> Tensor:
    """Element-wise maximum (ties split the gradient evenly)."""
    like = _first_tensor(a, b)
    return _tensor(a, like).maximum(_tensor(b, like))


def minimum(a: Any, b: Any) -> Tensor:
    """Element-wise minimum (ties split the gradient evenly)."""
    like = _first_tensor(a, b)
    return _tensor(a, like).minimum(_tensor(b, like))


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, else ``b``; gradients flow to ``a`` and ``b``."""
    cond = _tensor(cond) if isinstance(cond, Tensor) else Tensor(cond, dtype=bool)
    return cond.select(a, b)


def _join(name: str, op: Any, tensors: Sequence[Any], axis: int, new_axis: bool) -> Tensor:
    if not tensors:
        raise ShapeError(with_location(f"{name}: needs at least one tensor"))
    like = _first_tensor(*tensors)
    values = tuple(_tensor(t, like) for t in tensors)
    ndim = values[0].ndim + new_axis
    if not -ndim <= int(axis) < ndim:
        raise ShapeError(with_location(f"{name}: axis {axis} is out of range for {ndim} "
                                       f"dimensions"))
    return apply(op, values, {"axis": int(axis) % ndim})


def concat(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    return _join("concat", shape_ops.CONCAT, tensors, axis, False)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    return _join("stack", shape_ops.STACK, tensors, axis, True)
