"""Loss functions (PyTorch's defaults: mean reduction), functional and as modules."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DTypeError, ShapeError, describe, with_location
from ..runtime import Tensor
from .module import Module

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss",
           "binary_cross_entropy_with_logits", "cross_entropy", "l1_loss", "mse_loss", "nll_loss",
           "one_hot"]

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _target(pred: Tensor, target: Any, op: str) -> Tensor:
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target, pred.dtype))
    if target.shape != pred.shape:
        raise ShapeError(with_location(f"{op}: input {describe(pred)} and target "
                                       f"{describe(target)} differ in shape"))
    return target


def mse_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error."""
    diff = pred.sub(_target(pred, target, "mse_loss"))
    return _reduce(diff.mul(diff), reduction, "mse_loss")


def l1_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error."""
    return _reduce(pred.sub(_target(pred, target, "l1_loss")).abs(), reduction, "l1_loss")


def one_hot(labels: Any, num_classes: int, dtype: Any = np.float32) -> Tensor:
    """Integer labels ``[...]`` as one-hot rows ``[..., num_classes]`` (the ``one_hot`` op)."""
    labels = labels if isinstance(labels, Tensor) else Tensor(np.asarray(labels))
    return labels.one_hot(num_classes, dtype)


def _class_targets(log_probs: Tensor, labels: Any, op: str, smoothing: float = 0.0) -> Tensor:
    if not isinstance(labels, Tensor):
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu":
            raise DTypeError(with_location(f"{op}: labels must be integers, got {labels.dtype}"))
    if log_probs.ndim != 2 or tuple(labels.shape) != tuple(log_probs.shape[:1]):
        raise ShapeError(with_location(f"{op}: needs logits [N, C] and labels [N], got "
                                       f"{describe(log_probs)} and {describe(labels)}"))
    targets = one_hot(labels, log_probs.shape[1], log_probs.dtype)
    if smoothing:
        targets = targets.mul(1.0 - smoothing).add(smoothing / log_probs.shape[1])
    return targets


def nll_loss(log_probs: Tensor, labels: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer ``labels`` under ``log_probs`` ``[N, C]``."""
    targets = _class_targets(log_probs, labels, "nll_loss")
    return _reduce(log_probs.mul(targets).sum(1).neg(), reduction, "nll_loss")


def cross_entropy(logits: Tensor, labels: Any, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of ``logits`` ``[N, C]`` and integer ``labels`` ``[N]``.

    Uses a stable log-softmax, so extreme logits give no nan; the gradient is exactly
    ``(softmax - target) / N``. ``label_smoothing`` mixes the one-hot target with uniform.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing}")
    targets = _class_targets(logits, labels, "cross_entropy", label_smoothing)
    return _reduce(logits.cross_entropy_rows(targets), reduction, "cross_entropy")


def binary_cross_entropy_with_logits(logits: Tensor, targets: Any,
                                     reduction: str = "mean") -> Tensor:
    """Sigmoid + binary cross-entropy in one stable expression: ``softplus(x) - x * y``."""
    y = _target(logits, targets, "binary_cross_entropy_with_logits")
    return _reduce(logits.softplus().sub(logits.mul(y)), reduction,
                   "binary_cross_entropy_with_logits")


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction


class MSELoss(_Loss):
    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return mse_loss(pred, target, self.reduction)


class L1Loss(_Loss):
    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return l1_loss(pred, target, self.reduction)


class NLLLoss(_Loss):
    def forward(self, log_probs: Tensor, labels: Any) -> Tensor:
        return nll_loss(log_probs, labels, self.reduction)


class CrossEntropyLoss(_Loss):
    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, labels: Any) -> Tensor:
        return cross_entropy(logits, labels, self.label_smoothing, self.reduction)


class BCEWithLogitsLoss(_Loss):
    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        return binary_cross_entropy_with_logits(logits, targets, self.reduction)
