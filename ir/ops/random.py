"""Random draws from a counter-based stream whose state is an ordinary (uint64) value.

The state ``[key, counter]`` is an input of the ``random`` op, so a compiled function reads the
generator's current state on every call; the caller advances the counter with an in-place
update (a graph update when compiled). One call draws from Philox with that key at counter
``(0, 0, counter, 0)``: every call has its own stream, and eager and compiled code draw the
same numbers from the same state. Under ``vmap`` its ``randomness`` decides: one draw of
``[B, *shape]`` (``"different"``), one draw for every example (``"same"``), or an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import TransformError
from ..registry import BatchInfo, OpDef, register
from .batching import batch_error, with_batch
from .rules import OpBase, shape_error

DISTRIBUTIONS = ("uniform", "normal")


def stream(state: np.ndarray) -> np.random.Generator:
    """The numpy Generator of one call: Philox keyed by ``state[0]`` at counter ``state[1]``."""
    return np.random.Generator(np.random.Philox(key=int(state[0]),
                                                counter=(0, 0, int(state[1]), 0)))


def _random_impl(state, shape, dtype, distribution):
    draw = stream(state)
    if distribution == "uniform":
        return draw.random(shape, dtype=dtype)
    return draw.standard_normal(shape, dtype=dtype)


def _random_infer(state, shape, dtype, distribution):
    if tuple(state.shape) != (2,) or np.dtype(state.dtype) != np.uint64:
        raise TypeError(f"a generator state is uint64 [2] (key, counter), got "
                        f"{np.dtype(state.dtype)}{list(state.shape)}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    return tuple(shape), np.dtype(dtype)


def _random_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
    """As ``vmap``'s ``randomness`` says: ``"different"`` draws ``[B, *shape]`` from the stream
    (the first example draws what one call would), ``"same"`` draws once for every example,
    ``"error"`` refuses. The state is read, never advanced, here: the caller's counter update
    is applied once for the whole batch."""
    (state,), shape = xs, tuple(attrs["shape"])
    if batched[0]:
        raise batch_error(op, "a batched generator state (one stream per example); draw from "
                              "one generator with randomness='different' instead")
    if info.randomness == "different":
        return state._apply(op, xs, {**attrs, "shape": (info.size, *shape)})
    if info.randomness == "same":
        return with_batch(state._apply(op, xs, attrs), False, info.size)
    raise TransformError("vmap: the function draws random numbers; pass randomness='different' "
                         "(independent draws per example) or randomness='same' (one draw for "
                         "the whole batch) to vmap")


RANDOM = register(OpDef(
    name="random", kind="other", impl=_random_impl, infer=_random_infer,
    batch=_random_batch, draws=True, attrs=("shape", "dtype", "distribution"),
    doc="uniform [0, 1) or standard normal values drawn from a Philox stream at the state "
        "[key, counter] (no gradient)"))


class RandomMethods(OpBase):
    """Tensor methods of the random ops (see ``OpMethods``)."""

    __slots__ = ()

    def draw(self, shape: Sequence[int], dtype: Any = np.float32,
             distribution: str = "uniform") -> Any:
        """Values drawn from the Philox stream whose state this uint64 ``[key, counter]`` holds
        (``aprender.Generator`` calls this and then advances the counter)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise shape_error("random", f"draws float32 or float64 values, not {dtype}", self)
        return self._apply(RANDOM, (self,), {"shape": tuple(int(d) for d in shape),
                                             "dtype": dtype, "distribution": distribution})
