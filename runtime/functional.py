"""Free functions over several tensors: maximum, minimum, where, concat (cat), stack, einsum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ShapeError, with_location
from ..ir.ops import linalg as linalg_ops
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


def _axis_or_dim(name: str, axis: int | None, dim: int | None) -> int:
    if axis is not None and dim is not None and int(axis) != int(dim):
        raise ShapeError(with_location(f"{name}: give axis= or dim=, not both"))
    return int(dim if dim is not None else axis if axis is not None else 0)


def concat(tensors: Sequence[Any], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis (``dim=`` is PyTorch's name for ``axis=``)."""
    return _join("concat", shape_ops.CONCAT, tensors, _axis_or_dim("concat", axis, dim), False)


def cat(tensors: Sequence[Any], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """PyTorch's name of ``concat``."""
    return _join("cat", shape_ops.CONCAT, tensors, _axis_or_dim("cat", axis, dim), False)


def stack(tensors: Sequence[Any], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along a new axis (``dim=`` is PyTorch's name for ``axis=``)."""
    return _join("stack", shape_ops.STACK, tensors, _axis_or_dim("stack", axis, dim), True)


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation with numpy's and PyTorch's rules (``"ij,jk->ik"``, implicit output,
    ``...`` broadcasting, repeated subscripts for diagonals and traces); ``operands`` may also
    come as one list. One op: pairs contract through one BLAS matmul, and each gradient is an
    einsum too (so gradients of gradients work)."""
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    like = _first_tensor(*operands)
    return linalg_ops.einsum(equation, *(_tensor(v, like) for v in operands))
