"""Batching rules shared by op families (``vmap``; the contract is ``registry.Batch``).

Every batched input arrives with its batch at axis 0, so a rule only has to say where the
example's axes went: one further along for the batched inputs. Axis attributes are stored
normalized (non-negative, relative to the example), so shifting them by one is enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import TransformError
from ..registry import BatchInfo, OpDef


def example_ndim(x: Any, batched: bool) -> int:
    """The number of axes ``x`` has in one example."""
    return x.ndim - 1 if batched else x.ndim


def shift_axes(axis: Any, ndim: int) -> Any:
    """A normalized axis attribute of an example of ``ndim`` axes, for the batched value:
    None (every axis) names the example's axes explicitly; an int or a tuple moves by one."""
    if axis is None:
        return tuple(range(1, ndim + 1))
    if isinstance(axis, int):
        return axis + 1
    return tuple(a + 1 for a in axis)


def with_batch(x: Any, batched: bool, size: int) -> Any:
    """``x`` with the batch at axis 0: itself when batched, else a broadcast view of what every
    example sees."""
    if batched:
        return x
    return x.reshape((1, *x.shape)).broadcast_to((size, *x.shape))


def unit_axes(x: Any, count: int) -> Any:
    """A batched ``x`` with ``count`` unit axes inserted behind the batch axis."""
    if not count:
        return x
    return x.reshape((x.shape[0], *(1,) * count, *x.shape[1:]))


def align(xs: Sequence[Any], batched: Sequence[bool]) -> tuple:
    """Batched inputs padded with unit axes after the batch axis, so that numpy broadcasting of
    the batched values lines each example's axes up as it does for one example."""
    rank = max(example_ndim(x, b) for x, b in zip(xs, batched, strict=True))
    return tuple(unit_axes(x, rank - example_ndim(x, b)) if b else x
                 for x, b in zip(xs, batched, strict=True))


def elementwise_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                      info: BatchInfo) -> Any:
    """Element-wise ops (and any op that broadcasts its inputs and has no axis attributes):
    the same op on the aligned batched values."""
    xs = align(xs, batched)
    return xs[0]._apply(op, xs, attrs)


def axis_batch(*names: str):
    """A rule for one-input ops whose attributes ``names`` are normalized axes (None: every
    axis) of the example: the same op with those axes moved past the batch axis."""

    def rule(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
        ndim = example_ndim(xs[0], batched[0])
        moved = dict(attrs)
        for name in names:
            moved[name] = shift_axes(attrs[name], ndim)
        return xs[0]._apply(op, xs, moved)

    return rule


def batch_error(op: OpDef, what: str) -> TransformError:
    """The error of an op whose batching rule cannot batch ``what``."""
    return TransformError(f"vmap: {op.name} cannot batch {what}")
