"""Tensor factories: constants and seeded random tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError, with_location
from .random import Generator, randn_from, refuse_untracked_random
from .tensor import Tensor, _wrap

Seed = int | np.random.Generator | None


def _leaf(data: np.ndarray, requires_grad: bool) -> Tensor:
    return _wrap(data, None, False).requires_grad(requires_grad)


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(d) for d in shape)


def generator(rng: Seed) -> np.random.Generator:
    """A numpy Generator from a seed (int), a Generator (used as is) or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def zeros(shape: int | Sequence[int], dtype: Any = np.float32,
          requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    return _leaf(np.zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(shape: int | Sequence[int], dtype: Any = np.float32,
         requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return _leaf(np.ones(_shape(shape), dtype=dtype), requires_grad)


def full(shape: int | Sequence[int], value: float, dtype: Any = np.float32,
         requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``value``."""
    return _leaf(np.full(_shape(shape), value, dtype=dtype), requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    """Zeros of ``t``'s shape and dtype."""
    return zeros(t.shape, t.dtype, requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    """Ones of ``t``'s shape and dtype."""
    return ones(t.shape, t.dtype, requires_grad)


def _numpy_rng(rng: Seed, fn: str) -> np.random.Generator:
    if not isinstance(rng, int | np.integer):  # fresh entropy or a stateful numpy generator
        refuse_untracked_random(fn)
    return generator(rng)


def randn(shape: int | Sequence[int], rng: Seed = None, dtype: Any = np.float32,
          requires_grad: bool = False, generator: Generator | None = None) -> Tensor:
    """Standard normal samples; ``rng`` is a seed or a ``numpy.random.Generator``, or draw from
    an ``aprender.Generator`` with ``generator=`` (what compiled functions need)."""
    if generator is not None:
        out = randn_from(_shape(shape), generator, dtype)
        return out.requires_grad() if requires_grad else out
    data = _numpy_rng(rng, "randn").standard_normal(_shape(shape)).astype(dtype, copy=False)
    return _leaf(data, requires_grad)


def uniform(shape: int | Sequence[int], low: float = 0.0, high: float = 1.0, rng: Seed = None,
            dtype: Any = np.float32, requires_grad: bool = False) -> Tensor:
    """Uniform samples in ``[low, high)``; ``rng`` is a seed or a ``numpy.random.Generator``."""
    data = _numpy_rng(rng, "uniform").uniform(low, high, _shape(shape)).astype(dtype, copy=False)
    return _leaf(data, requires_grad)


def arange(*args: float, dtype: Any = np.float32) -> Tensor:
    """``numpy.arange`` as a tensor (float32 by default)."""
    return _wrap(np.arange(*args, dtype=dtype), None, False)


def eye(n: int, m: int | None = None, dtype: Any = np.float32,
        requires_grad: bool = False) -> Tensor:
    """An ``n x m`` (``m`` defaults to ``n``) matrix with ones on the diagonal."""
    return _leaf(np.eye(int(n), None if m is None else int(m), dtype=dtype), requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = np.float32,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (PyTorch's order of
    arguments)."""
    if int(steps) < 0:
        raise ShapeError(with_location(f"linspace: steps must be non-negative, got {steps}"))
    return _leaf(np.linspace(start, end, int(steps), dtype=dtype), requires_grad)
