"""Shuffled mini-batches of numpy arrays: ``aprender.data``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from .runtime.factories import Seed, generator


class Sampler(Protocol):
    """Indices of the samples of one epoch, in order (``len()``: how many)."""

    def __iter__(self) -> Iterator[int]: ...

    def __len__(self) -> int: ...


class DataLoader:
    """Iterate over ``arrays`` (same first dimension) in mini-batches of ``batch_size``.

    Each ``iter()`` is one epoch; with ``shuffle`` (the default) the order is redrawn from the
    seeded ``rng`` every epoch, so runs repeat exactly. A ``sampler`` (an iterable of indices
    with a length, e.g. ``aprender.distributed.DistributedSampler``: this rank's shard) gives
    the order instead; then ``shuffle`` is the sampler's business and may not be set.
    """

    def __init__(self, *arrays: np.ndarray, batch_size: int = 32, shuffle: bool | None = None,
                 drop_last: bool = False, rng: Seed = 0, sampler: Sampler | None = None) -> None:
        if not arrays:
            raise ValueError("DataLoader: needs at least one array")
        sizes = {len(a) for a in arrays}
        if len(sizes) != 1:
            raise ValueError(f"DataLoader: arrays differ in length: {sorted(sizes)}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be positive, got {batch_size}")
        if sampler is not None and shuffle is not None:
            raise ValueError("DataLoader: shuffle= and sampler= exclude each other (the sampler "
                             "decides the order, e.g. DistributedSampler(shuffle=...))")
        self.arrays = [np.asarray(a) for a in arrays]
        self.batch_size, self.drop_last = batch_size, drop_last
        self.shuffle = shuffle is not False and sampler is None
        self.sampler = sampler
        self._rng = generator(rng)

    def __len__(self) -> int:
        n = len(self.arrays[0]) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        n = len(self.arrays[0])
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        else:
            order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield tuple(a[idx] for a in self.arrays)
