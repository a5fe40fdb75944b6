"""Free functions over several tensors: maximum, minimum, where, concat (cat), stack, einsum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ShapeError, with_location
from ..ir.ops import linalg as linalg_ops
from ..ir.ops import shape as shape_ops
from ..ir.ops.rules import pick_alias
from .tensor import Tensor, apply


def as_tensor(value: Any, like: Tensor | None = None) -> Tensor:
    """``value`` as an operand beside ``like``: a Tensor as it is, a Python number weak (it keeps
    ``like``'s dtype, as in ``t + 1.5``), a numpy array with its dtype, anything else (or any
    value without ``like``) as ``Tensor(value)``."""
    if isinstance(value, Tensor):
        return value
    return like._coerce(value) if like is not None else Tensor(value)


def first_tensor(*values: Any) -> Tensor | None:
    """The first of ``values`` that is a Tensor (None when none is)."""
    return next((v for v in values if isinstance(v, Tensor)), None)


def maximum(a: Any, b: Any) -> Tensor:
    """Element-wise maximum (ties split the gradient evenly)."""
    like = first_tensor(a, b)
    return as_tensor(a, like).maximum(as_tensor(b, like))


def minimum(a: Any, b: Any) -> Tensor:
    """Element-wise minimum (ties split the gradient evenly)."""
    like = first_tensor(a, b)
    return as_tensor(a, like).minimum(as_tensor(b, like))


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, else ``b``; gradients flow to ``a`` and ``b``."""
    cond = cond if isinstance(cond, Tensor) else Tensor(cond, dtype=bool)
    return cond.select(a, b)


def _join(name: str, op: Any, tensors: Sequence[Any], axis: Any, dim: Any,
          new_axis: bool) -> Tensor:
    """``tensors`` joined by ``op`` along ``axis`` (or PyTorch's alias ``dim``; default 0)."""
    axis = pick_alias(name, "axis", axis, "dim", dim, 0)
    if not tensors:
        raise ShapeError(with_location(f"{name}: needs at least one tensor"))
    like = first_tensor(*tensors)
    values = tuple(as_tensor(t, like) for t in tensors)
    ndim = values[0].ndim + new_axis
    if not -ndim <= int(axis) < ndim:
        raise ShapeError(with_location(f"{name}: axis {axis} is out of range for {ndim} "
                                       f"dimensions"))
    return apply(op, values, {"axis": int(axis) % ndim})


def concat(tensors: Sequence[Any], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis (``dim=`` is PyTorch's name for ``axis=``)."""
    return _join("concat", shape_ops.CONCAT, tensors, axis, dim, False)


def cat(tensors: Sequence[Any], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """PyTorch's name of ``concat``."""
    return _join("cat", shape_ops.CONCAT, tensors, axis, dim, False)


def stack(tensors: Sequence[Any], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along a new axis (``dim=`` is PyTorch's name for ``axis=``)."""
    return _join("stack", shape_ops.STACK, tensors, axis, dim, True)


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation with numpy's and PyTorch's rules (``"ij,jk->ik"``, implicit output,
    ``...`` broadcasting, repeated subscripts for diagonals and traces); ``operands`` may also
    come as one list. One op: pairs contract through one BLAS matmul, and each gradient is an
    einsum too (so gradients of gradients work)."""
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    like = first_tensor(*operands)
    return linalg_ops.einsum(equation, *(as_tensor(v, like) for v in operands))
