"""Dropout layers."""

from __future__ import annotations

import numpy as np

from ..runtime import Tensor
from ..runtime.random import Generator
from .functional.random import dropout
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zeroes each element with probability ``p`` in training (scaling the rest by
    ``1 / (1 - p)``); the identity in eval mode. ``rng`` (a seed, an ``aprender.Generator`` or a
    numpy Generator to seed from) gives the layer its own stream; without it the layer draws
    from the default generator (``aprender.manual_seed``). ``inplace`` is accepted for
    PyTorch's signature; the result is always a new tensor."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 rng: int | Generator | np.random.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace
        if isinstance(rng, np.random.Generator):
            rng = int(rng.integers(2**63))
        self.generator = Generator(rng) if isinstance(rng, int | np.integer) else rng

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
