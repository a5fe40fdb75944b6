"""Random ops drawing from an explicit generator: dropout."""

from __future__ import annotations

import numpy as np

from ...errors import DTypeError, describe, with_location
from ...runtime import Tensor
from ...runtime.random import Generator, default_generator

__all__ = ["dropout"]


def dropout(input: Tensor, p: float = 0.5, training: bool = True,  # noqa: A002 - torch's name
            generator: Generator | None = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` when
    ``training``; the identity otherwise. The mask comes from ``generator`` (default: the
    default generator), so a compiled step draws exactly what the eager step would."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(with_location(f"dropout: p must be in [0, 1], got {p}"))
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input.mul(0.0)
    if input.dtype.kind != "f":
        raise DTypeError(with_location(f"dropout: needs a float input, got {describe(input)}"))
    draw = input.dtype if input.dtype.itemsize >= 4 else np.dtype(np.float32)  # float16: float32
    noise = (generator or default_generator).draw(input.shape, draw, "uniform")
    keep = noise.ge(p).astype(input.dtype).mul(1.0 / (1.0 - p))
    return input.mul(keep)
