"""Ops of the losses: class-index targets as (masked) one-hot rows, and binary cross-entropy.

``class_targets`` turns integer class indices into one-hot rows along a class axis, with zero
rows where the target equals ``ignore_index``; its kernel checks the index range when it runs
(eagerly and in compiled code), so the indices are ordinary graph inputs. Cross-entropy and
NLL build their (weighted, smoothed) target distributions from it and reuse the fused
``cross_entropy`` op. ``binary_cross_entropy`` is PyTorch's: logs clamped at -100 and the
gradient ``(x - y) / max(x (1 - x), 1e-12)``, so probabilities of exactly 0 or 1 give finite
values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DTypeError, describe, with_location
from ..registry import OpDef, register
from .batching import axis_batch, elementwise_batch
from .rules import NO_ATTRS, OpBase, broadcast_shape, shape_error, unbroadcast


def _class_targets_shape(shape: tuple[int, ...], num_classes: int, axis: int) -> tuple:
    return tuple(shape[:axis]) + (num_classes,) + tuple(shape[axis:])


def _class_targets_infer(target, num_classes, axis, ignore_index, dtype):
    if np.dtype(target.dtype).kind not in "iu":
        raise TypeError(f"class-index targets must be integers, got {target.dtype}")
    if not 0 <= axis <= len(target.shape):
        raise ValueError(f"class axis {axis} is out of range for targets {list(target.shape)}")
    return _class_targets_shape(tuple(target.shape), num_classes, axis), np.dtype(dtype)


def _class_targets_impl(target, num_classes, axis, ignore_index, dtype):
    if target.dtype.kind not in "iu":
        raise TypeError(f"class-index targets must be integers, got {target.dtype}")
    bad = (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bad.any():
        allowed = f"[0, {num_classes})"
        if ignore_index is not None:
            allowed += f" (or ignore_index={ignore_index})"
        raise ValueError(f"target class indices must lie in {allowed}, got "
                         f"{target[bad].reshape(-1)[0]}")
    classes = np.arange(num_classes).reshape((num_classes,) + (1,) * (target.ndim - axis))
    expanded = np.expand_dims(target, axis)
    hits = expanded == classes
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        hits &= expanded != ignore_index
    return hits.astype(dtype)


CLASS_TARGETS = register(OpDef(
    name="class_targets", kind="other", impl=_class_targets_impl, infer=_class_targets_infer,
    checks=True, batch=axis_batch("axis"), attrs=("num_classes", "axis", "ignore_index", "dtype"),
    doc="integer class indices as one-hot rows along a class axis inserted at `axis`, zero "
        "where the target equals ignore_index (None: none ignored); no gradient; checks the "
        "index range when it runs"))


def _bce_impl(x, y):
    if not ((x >= 0) & (x <= 1)).all():
        raise ValueError("all elements of input should be between 0 and 1")
    if not ((y >= 0) & (y <= 1)).all():
        raise ValueError("all elements of target should be between 0 and 1")
    with np.errstate(divide="ignore"):
        return (y - 1) * np.maximum(np.log1p(-x), -100) - y * np.maximum(np.log(x), -100)


def _bce_infer(x, y):
    for v in (x, y):
        if np.dtype(v.dtype).kind != "f":
            raise TypeError(f"needs float input and target, got {x.dtype} and {y.dtype}")
    return broadcast_shape(tuple(x.shape), tuple(y.shape)), np.result_type(x.dtype, y.dtype)


#: PyTorch's BCE gradient floor (a float32 1e-12)
_EPSILON = float(np.float32(1e-12))


def _bce_vjp(g, out, inputs, at, needs):
    # loss = -(y max(log x, -100) + (1 - y) max(log(1 - x), -100))
    #   d/dx = (x - y) / max(x (1 - x), 1e-12)  (PyTorch's, finite at 0 and 1)
    #   d/dy = max(log(1 - x), -100) - max(log x, -100)  (exact for the clamped logs)
    x, y = inputs
    dx = dy = None
    if needs[0]:
        denom = x.mul(x.neg().add(1.0)).maximum(_EPSILON)
        dx = unbroadcast(g.mul(x.sub(y)).div(denom), x.shape)
    if needs[1]:
        logit = x.neg().add(1.0).log().maximum(-100.0).sub(x.log().maximum(-100.0))
        dy = unbroadcast(g.mul(logit), y.shape)
    return dx, dy


BINARY_CROSS_ENTROPY = register(OpDef(
    name="binary_cross_entropy", kind="elementwise", impl=_bce_impl, infer=_bce_infer,
    vjp=_bce_vjp, batch=elementwise_batch, save_inputs=True, checks=True,
    doc="-(y log x + (1 - y) log(1 - x)) per element, logs clamped at -100 as PyTorch; checks "
        "that input and target lie in [0, 1] when it runs"))


class NNMethods(OpBase):
    """Tensor methods of the loss ops (see ``OpMethods``)."""

    __slots__ = ()

    def class_targets(self, num_classes: int, axis: int = -1, ignore_index: int | None = None,
                      dtype: Any = np.float32) -> Any:
        """These integer class indices as one-hot rows of ``num_classes`` along a new axis
        ``axis`` of the result (``-1``: last), zero where the index equals ``ignore_index``."""
        ndim = len(self.shape) + 1
        if not -ndim <= axis < ndim:
            raise shape_error("class_targets", f"axis {axis} is out of range for {ndim} "
                                               f"dimensions", self)
        if np.dtype(self.dtype).kind not in "iu":
            raise DTypeError(with_location(f"class_targets: class-index targets must be "
                                           f"integers, got {describe(self)}"))
        return self._apply(CLASS_TARGETS, (self,), {
            "num_classes": int(num_classes), "axis": axis % ndim,
            "ignore_index": None if ignore_index is None else int(ignore_index),
            "dtype": np.dtype(dtype)})

    def binary_cross_entropy(self, target: Any) -> Any:
        """Element-wise binary cross-entropy of these probabilities against ``target``."""
        return self._apply(BINARY_CROSS_ENTROPY, (self, self._coerce(target)), NO_ATTRS)
