"""``DistributedSampler``: each rank's share of an epoch's shuffled sample indices."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import comm

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """The indices of rank ``rank``'s shard of ``num_samples`` samples, as PyTorch's sampler.

    Every rank draws the same permutation for an epoch (seeded by ``seed`` and the epoch: call
    ``set_epoch(e)`` at the start of each epoch) and takes every ``num_replicas``-th index
    from position ``rank``: the shards are disjoint. When ``num_samples`` does not divide
    evenly, the permutation is padded by repeating its start (every rank gets as many samples),
    or with ``drop_last`` cut to a multiple of ``num_replicas``. ``num_replicas`` and ``rank``
    default to the job's (``aprender.distributed.world_size()`` and ``rank()``).
    Pass it to ``aprender.data.DataLoader(..., sampler=)``.
    """

    def __init__(self, num_samples: int, num_replicas: int | None = None,
                 rank: int | None = None, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:
        num_replicas = comm.world_size() if num_replicas is None else int(num_replicas)
        rank = comm.rank() if rank is None else int(rank)
        if num_samples < 0:
            raise ValueError(f"DistributedSampler: num_samples must be >= 0, got {num_samples}")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be positive, got "
                             f"{num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is not in [0, {num_replicas})")
        self.dataset_size, self.num_replicas, self.rank = int(num_samples), num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.epoch = 0
        if drop_last:
            self.per_rank = self.dataset_size // num_replicas
        else:
            self.per_rank = -(-self.dataset_size // num_replicas)
        self.total_size = self.per_rank * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation from now on (the same on every rank)."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch (int64)."""
        n = self.dataset_size
        if self.shuffle:
            order = np.random.default_rng([self.seed % 2**64, self.epoch % 2**64]).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:  # pad by repeating the start (as often as needed)
            order = np.resize(order, self.total_size)
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.per_rank

    def __repr__(self) -> str:
        return (f"DistributedSampler({self.dataset_size}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, "
                f"epoch={self.epoch}, drop_last={self.drop_last})")
