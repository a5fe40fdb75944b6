"""``Generator``: an explicit random stream whose state is a tensor, so compiled code draws the
same numbers as eager code (see ``ir/ops/random.py``), and the random functions that use it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import CompileError, with_location
from .state import STATE
from .tensor import Tensor

#: PyTorch's default seed, so a fresh process draws the same numbers every run
DEFAULT_SEED = 67280421310721
_STEP = np.array([0, 1], dtype=np.uint64)
#: held while a generator draws and advances (threads may share one)
_DRAW_LOCK = threading.Lock()


class Generator:
    """A Philox stream: ``state`` is a uint64 tensor ``[key, counter]``; each draw reads it and
    advances the counter in place (a compiled step takes the state as an input and updates it).

    ``Generator(seed)``; ``manual_seed(seed)`` restarts it; ``get_state()``/``set_state()`` save
    and restore it.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.state = Tensor(np.array([self._key(seed), 0], dtype=np.uint64))

    @staticmethod
    def _key(seed: int | None) -> int:
        if seed is None:
            return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        return int(seed) % 2**64

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from ``seed``; returns the generator."""
        self.state.assign(np.array([self._key(seed), 0], dtype=np.uint64))
        return self

    def initial_seed(self) -> int:
        """The key the stream was seeded with (a value read: not inside a compiled function)."""
        return int(self.state.data()[0])

    def get_state(self) -> np.ndarray:
        """A copy of the state (``[key, counter]``; a value read: not inside a compiled
        function, where the state is a graph input)."""
        return self.state.data().copy()

    def set_state(self, state: Any) -> None:
        """Restore a state from ``get_state()``."""
        self.state.assign(np.asarray(state, dtype=np.uint64))

    def draw(self, shape: Sequence[int], dtype: Any, distribution: str) -> Tensor:
        """Values of ``shape`` from this stream; advances the counter (atomically: threads
        sharing a generator never draw the same numbers)."""
        with _DRAW_LOCK:
            values = self.state.draw(shape, dtype, distribution)
            self.state.add_(_STEP)
        return values

    def __repr__(self) -> str:
        key, counter = self.state._data.tolist()
        return f"Generator(key={key}, counter={counter})"


default_generator = Generator(DEFAULT_SEED)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (what random functions use when given no ``generator``)."""
    return default_generator.manual_seed(seed)


def _size(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and not isinstance(size[0], int | np.integer):
        size = tuple(size[0])
    return tuple(int(d) for d in size)


def rand(*size: Any, generator: Generator | None = None, dtype: Any = np.float32,
         requires_grad: bool = False) -> Tensor:
    """Uniform samples in ``[0, 1)`` from ``generator`` (default: the default generator)."""
    out = (generator or default_generator).draw(_size(size), dtype, "uniform")
    return out.requires_grad() if requires_grad else out


def randn_from(size: Sequence[int], generator: Generator | None, dtype: Any) -> Tensor:
    """Standard normal samples from ``generator`` (default: the default generator)."""
    return (generator or default_generator).draw(tuple(size), dtype, "normal")


def refuse_untracked_random(fn: str) -> None:
    """Inside a compiled function, numpy-seeded random factories would be drawn once and baked
    into the graph: refuse them there."""
    if STATE.recorder is not None and STATE.recorder.staging:
        raise CompileError(with_location(
            f"{fn}: a random tensor drawn from numpy inside {STATE.recorder.inside} would be "
            f"drawn once and reused; pass generator=aprender.Generator(seed) (or none: the default "
            f"generator), or a fixed integer rng"))
