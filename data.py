"""Shuffled mini-batches of numpy arrays: ``aprender.data``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .runtime.factories import Seed, generator


class DataLoader:
    """Iterate over ``arrays`` (same first dimension) in mini-batches of ``batch_size``.

    Each ``iter()`` is one epoch; with ``shuffle`` the order is redrawn from the seeded ``rng``
    every epoch, so runs repeat exactly.
    """

    def __init__(self, *arrays: np.ndarray, batch_size: int = 32, shuffle: bool = True,
                 drop_last: bool = False, rng: Seed = 0) -> None:
        if not arrays:
            raise ValueError("DataLoader: needs at least one array")
        sizes = {len(a) for a in arrays}
        if len(sizes) != 1:
            raise ValueError(f"DataLoader: arrays differ in length: {sorted(sizes)}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be positive, got {batch_size}")
        self.arrays = [np.asarray(a) for a in arrays]
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self._rng = generator(rng)

    def __len__(self) -> int:
        n = len(self.arrays[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        n = len(self.arrays[0])
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield tuple(a[idx] for a in self.arrays)
