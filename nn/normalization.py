"""Normalisation layers: LayerNorm (BatchNorm1d and BatchNorm2d to come)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime import Tensor
from .module import Module

__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` axes, then scale and shift."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5,
                 dtype: Any = np.float32) -> None:
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
            normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Tensor(np.ones(shape, dtype=dtype)).requires_grad()
        self.bias = Tensor(np.zeros(shape, dtype=dtype)).requires_grad()

    def forward(self, x: Tensor) -> Tensor:
        axes = tuple(range(x.ndim - len(self.normalized_shape), x.ndim))
        centered = x.sub(x.mean(axes, keepdims=True))
        var = centered.mul(centered).mean(axes, keepdims=True)
        return centered.div(var.add(self.eps).sqrt()).mul(self.weight).add(self.bias)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
