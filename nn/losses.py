"""Loss modules under PyTorch's names and arguments, the functional losses, and the seed's
``cross_entropy`` (``label_smoothing`` third, no index ignored unless asked)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime import Tensor
from . import functional as F
from .functional.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    huber_loss,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from .functional.sparse import one_hot as _one_hot
from .module import Module

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "L1Loss", "MSELoss",
           "NLLLoss", "SmoothL1Loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "cross_entropy", "huber_loss", "l1_loss", "mse_loss", "nll_loss", "one_hot",
           "smooth_l1_loss"]


def one_hot(labels: Any, num_classes: int = -1, dtype: Any = None) -> Tensor:
    """``F.one_hot`` (int64 rows, as PyTorch), cast to ``dtype`` when given (the seed's third
    argument: ``one_hot(labels, 3, np.float32)``)."""
    rows = _one_hot(labels, num_classes)
    return rows if dtype is None else rows.astype(dtype)


def cross_entropy(logits: Tensor, labels: Any, label_smoothing: float = 0.0,
                  reduction: str = "mean", *, weight: Any = None,
                  ignore_index: int | None = None) -> Tensor:
    """The seed's softmax cross-entropy: ``F.cross_entropy`` with ``label_smoothing`` as the
    third argument and no ignored index unless ``ignore_index`` is given (every label must be
    a class). Stable for extreme logits; the gradient is exactly ``(softmax - target) / N``."""
    return F.cross_entropy(logits, labels, weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)


def _as_buffer(value: Any) -> Tensor | None:
    if value is None or isinstance(value, Tensor):
        return value
    return Tensor(np.asarray(value))


class _Loss(Module):
    """PyTorch's loss base: ``reduction`` (or the deprecated ``size_average``/``reduce``); a
    string first argument is the reduction (the seed's ``MSELoss("sum")``)."""

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        if isinstance(size_average, str):  # the seed's MSELoss("sum"): the reduction first
            size_average, reduction = None, size_average
        if size_average is not None or reduce is not None:
            size_average = True if size_average is None else size_average
            reduction = "none" if reduce is False else "mean" if size_average else "sum"
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        if isinstance(weight, str):  # the seed's NLLLoss("sum"): the reduction first
            weight, reduction = None, weight
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_buffer(weight))


class MSELoss(_Loss):
    """``F.mse_loss`` as a module."""

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002 - torch's name
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """``F.l1_loss`` as a module."""

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """``F.smooth_l1_loss`` as a module."""

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """``F.huber_loss`` as a module."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class NLLLoss(_WeightedLoss):
    """``F.nll_loss`` as a module; ``weight`` is a buffer (in the state dict)."""

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """``F.cross_entropy`` as a module; ``weight`` is a buffer (in the state dict)."""

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class BCELoss(_WeightedLoss):
    """``F.binary_cross_entropy`` as a module; ``weight`` is a buffer."""

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``F.binary_cross_entropy_with_logits`` as a module; ``weight`` and ``pos_weight`` are
    buffers."""

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean",
                 pos_weight: Any = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_buffer(weight))
        self.register_buffer("pos_weight", _as_buffer(pos_weight))

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return binary_cross_entropy_with_logits(input, target, self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)
