"""Lookup layers: Embedding."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError, with_location
from ..runtime import Tensor
from ..runtime.factories import Seed, generator
from .functional.sparse import embedding
from .module import Module

__all__ = ["Embedding"]


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of ``embedding_dim``, initialised N(0, 1) as in
    PyTorch; the row at ``padding_idx`` starts at zero and gets no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 *, rng: Seed = None, dtype: Any = np.float32) -> None:
        if padding_idx is not None:
            if not -num_embeddings <= int(padding_idx) < num_embeddings:
                raise ShapeError(with_location(
                    f"Embedding: padding_idx {padding_idx} is out of range for "
                    f"{num_embeddings} embeddings"))
            padding_idx = int(padding_idx) % num_embeddings
        self.padding_idx = padding_idx
        table = generator(rng).standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        if padding_idx is not None:
            table[padding_idx] = 0
        self.weight = Tensor(table).requires_grad()

    def forward(self, indices: Any) -> Tensor:
        return embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}{pad}"
