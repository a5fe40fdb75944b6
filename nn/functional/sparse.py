"""Lookups and shape helpers: embedding, one_hot, pad."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import DTypeError, GraphError, ShapeError, describe, with_location
from ...ir.ops.shape import PAD
from ...ir.registry import Operand
from ...runtime.state import STATE
from ...runtime.tensor import Tensor, apply

__all__ = ["embedding", "one_hot", "pad"]


def _int_tensor(op: str, value: Any) -> Tensor:
    """An integer index tensor (a numpy array is shared: a compiled call reads it anew)."""
    if not isinstance(value, Tensor):
        value = np.asarray(value)
        if value.dtype.kind not in "iu":
            raise DTypeError(with_location(f"{op}: indices must be integers, got "
                                           f"{describe(value)}"))
        return Tensor._as_input(value)
    if value.dtype.kind not in "iu":
        raise DTypeError(with_location(f"{op}: indices must be integers, got {describe(value)}"))
    return value


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant",  # noqa: A002
        value: float | None = None) -> Tensor:
    """Pad with ``value`` (0 by default), PyTorch's order: ``pad = (left, right)`` for the last
    dimension, then ``(top, bottom)`` for the one before, and so on; negative widths crop.
    Only ``mode="constant"``."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    widths = tuple(int(p) for p in pad)
    ndim = input.ndim
    if len(widths) % 2 or len(widths) // 2 > ndim:
        raise ShapeError(with_location(
            f"pad: needs an even number of widths, at most 2 per dimension, got {list(widths)} "
            f"for {describe(input)}"))
    pairs = [(0, 0)] * ndim
    for k in range(len(widths) // 2):
        pairs[ndim - 1 - k] = (widths[2 * k], widths[2 * k + 1])
    sizes = [d + b + e for d, (b, e) in zip(input.shape, pairs, strict=True)]
    if any(s < 0 for s in sizes):
        raise ShapeError(with_location(f"pad: widths {list(widths)} crop {describe(input)} to a "
                                       f"negative size {sizes}"))
    if any(b < 0 or e < 0 for b, e in pairs):  # crop first: a view
        input = input[tuple(slice(-min(b, 0), d + min(e, 0))
                            for d, (b, e) in zip(input.shape, pairs, strict=True))]
        pairs = [(max(b, 0), max(e, 0)) for b, e in pairs]
    fill = 0 if value is None else value
    fill = bool(fill) if input.dtype == np.bool_ else \
        int(fill) if input.dtype.kind in "iu" and float(fill).is_integer() else float(fill)
    return apply(PAD, (input,), {"widths": tuple(pairs), "value": fill})


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """Integer labels ``[...]`` as int64 one-hot rows ``[..., num_classes]``; ``-1`` takes
    ``max + 1`` (a read of the values, so a compiled function must pass ``num_classes``)."""
    labels = _int_tensor("one_hot", tensor)
    n = int(num_classes)
    if n == -1:
        if STATE.recorder is not None and STATE.recorder.staging:
            raise GraphError(with_location(
                "one_hot: num_classes=-1 reads the labels to find the largest, which a compiled "
                "function cannot do; pass num_classes"))
        if not labels.size:
            raise ShapeError(with_location("one_hot: cannot infer num_classes from an empty "
                                           "tensor; pass num_classes"))
        n = int(labels._data.max()) + 1
    elif n < 0:
        raise ShapeError(with_location(f"one_hot: num_classes must be -1 or non-negative, got "
                                       f"{num_classes}"))
    return labels.one_hot(n, np.int64)


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:  # noqa: A002
    """Rows of ``weight`` ``[num_embeddings, dim]`` at the integer indices ``input`` (the
    ``index`` op: the indices are an input of a compiled call); rows at ``padding_idx`` get no
    gradient."""
    indices = _int_tensor("embedding", input)
    if weight.ndim != 2:
        raise ShapeError(with_location(f"embedding: weight must be [num_embeddings, dim], got "
                                       f"{describe(weight)}"))
    out = weight.index((Operand(1),), (indices,))
    if padding_idx is None:
        return out
    n = weight.shape[0]
    if not -n <= int(padding_idx) < n:
        raise ShapeError(with_location(f"embedding: padding_idx {padding_idx} is out of range "
                                       f"for {n} embeddings"))
    hit = (indices == int(padding_idx) % n).reshape(tuple(indices.shape) + (1,))
    return hit.select(out.detach(), out)
