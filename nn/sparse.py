"""Lookup layers: Embedding."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime import Tensor
from ..runtime.factories import Seed, generator
from .module import Module

__all__ = ["Embedding"]


class Embedding(Module):
    """A table of ``num_embeddings`` vectors, initialised N(0, 1) as in PyTorch."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rng: Seed = None,
                 dtype: Any = np.float32) -> None:
        table = generator(rng).standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        self.weight = Tensor(table).requires_grad()

    def forward(self, indices: Any) -> Tensor:
        return self.weight[indices]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}"
