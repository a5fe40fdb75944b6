"""Normalisation layers under PyTorch's names: BatchNorm1d, BatchNorm2d and LayerNorm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError, describe, with_location
from ..runtime import Tensor, no_grad
from . import functional as F
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


class _BatchNorm(Module):
    """PyTorch's batch norm: ``weight``/``bias`` parameters (``affine``), and the buffers
    ``running_mean``, ``running_var`` and ``num_batches_tracked`` (``track_running_stats``).

    In training the batch statistics normalise and the running statistics move by
    ``momentum`` (``None``: a cumulative average over the batches seen); in evaluation the
    running statistics normalise (the batch statistics when they are not tracked).
    """

    _dims: tuple[int, ...] = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype: Any = np.float32,
                 *, bias: bool = True) -> None:
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        n = self.num_features
        self.weight = Tensor(np.ones(n, dtype=dtype)).requires_grad() if affine else None
        self.bias = Tensor(np.zeros(n, dtype=dtype)).requires_grad() if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(n, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(n, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.assign(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics, and the weight to 1 and the bias to 0."""
        self.reset_running_stats()
        with no_grad():
            if self.weight is not None:
                self.weight.assign(1)
            if self.bias is not None:
                self.bias.zero_()

    def _check_input_dim(self, x: Tensor) -> None:
        if x.ndim not in self._dims:
            raise ShapeError(with_location(f"{type(self).__name__}: expected input "
                                           f"{self._layout}, got {describe(x)}"))

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        factor: float | Tensor = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats \
            and self.num_batches_tracked is not None
        if counting and self.momentum is None:  # cumulative moving average: 1 / batches seen
            factor = (1.0 / (self.num_batches_tracked + 1)).astype(self.running_mean.dtype)
        batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        use_running = not self.training or self.track_running_stats
        out = F.batch_norm(x, self.running_mean if use_running else None,
                           self.running_var if use_running else None, self.weight, self.bias,
                           batch_stats, factor, self.eps)
        if counting:  # after the checks in batch_norm: a call that raises changes nothing
            self.num_batches_tracked.add_(1)
        return out

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of ``[N, C]`` or ``[N, C, L]`` inputs over the channels ``C``."""

    _dims = (2, 3)
    _layout = "[N, C] or [N, C, L] (2-D or 3-D)"


class BatchNorm2d(_BatchNorm):
    """Batch norm of ``[N, C, H, W]`` images over the channels ``C``."""

    _dims = (4,)
    _layout = "[N, C, H, W] (4-D)"


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dimensions, then scale by ``weight``
    and shift by ``bias`` (``elementwise_affine``; ``bias=False``: no shift), as PyTorch."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 dtype: Any = np.float32) -> None:
        shape = (int(normalized_shape),) if isinstance(normalized_shape, int | np.integer) \
            else tuple(int(d) for d in normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        affine = elementwise_affine
        self.weight = Tensor(np.ones(shape, dtype=dtype)).requires_grad() if affine else None
        self.bias = Tensor(np.zeros(shape, dtype=dtype)).requires_grad() \
            if affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
