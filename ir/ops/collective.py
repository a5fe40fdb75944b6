"""Collective ops: ``all_reduce`` across the ranks of a data-parallel job.

The kernel calls a backend that ``aprender.distributed.init()`` installs with ``set_backend``
(``ir/`` never imports ``distributed/`` or mpi4py); until then the job is one process and
``all_reduce`` is a copy, for sum and mean alike. Compiled code calls the same kernel (the op
has no template), so the all-reduce runs where the graph puts it.

An all-reduce is a rendezvous with the other ranks, not a pure function: it is marked
``effects``, so no pass drops it (its result unused), merges two of one value into one
collective, or folds it at compile time (every rank must run the same collectives).

Gradients: every rank's loss adds to the global loss, so the gradient of ``all_reduce(x, sum)``
is ``all_reduce(g, sum)`` (each rank's ``x`` feeds every rank's output) and that of ``mean`` is
``all_reduce(g, mean)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import DTypeError, describe, with_location
from ..registry import OpDef, register
from .batching import elementwise_batch
from .rules import OpBase, shape_error

REDUCTIONS = ("sum", "mean")
GROUPS = ("world",)

#: ``backend(x, op, group) -> the reduced array`` (a new array, ``x`` is left as it is)
Backend = Callable[[np.ndarray, str, str], np.ndarray]


def _single_process(x: np.ndarray, op: str, group: str) -> np.ndarray:
    return np.array(x, copy=True)


_backend: Backend = _single_process


def set_backend(backend: Backend | None) -> None:
    """Install the function the ``all_reduce`` kernel calls (None: single process, a copy)."""
    global _backend
    _backend = backend or _single_process


def bad_arguments(op: str, group: str) -> str | None:
    """What is wrong with the reduction ``op`` over ``group`` (None: fine)."""
    if op not in REDUCTIONS:
        return f"op must be one of {REDUCTIONS}, got {op!r}"
    if group not in GROUPS:
        return f"group must be one of {GROUPS}, got {group!r}"
    return None


def bad_dtype(op: str, dtype: np.dtype) -> str | None:
    """What is wrong with reducing ``dtype`` values by ``op`` (None: fine)."""
    if dtype.kind not in "fiu" or dtype.kind == "f" and dtype.itemsize < 4:
        return f"reduces float32/float64 and integer values, not {dtype}"
    if op == "mean" and dtype.kind != "f":
        return f"mean needs a float dtype, got {dtype} (use op='sum')"
    return None


def _all_reduce_impl(x: np.ndarray, op: str, group: str) -> np.ndarray:
    return _backend(x, op, group)


def _all_reduce_infer(x: Any, op: str, group: str) -> tuple[tuple[int, ...], np.dtype]:
    problem = bad_arguments(op, group)
    if problem:
        raise ValueError(problem)
    problem = bad_dtype(op, np.dtype(x.dtype))
    if problem:
        raise TypeError(problem)
    return tuple(x.shape), np.dtype(x.dtype)


def _all_reduce_vjp(g: Any, out: Any, inputs: tuple, attrs: dict, needs: tuple) -> tuple:
    return (g.all_reduce(attrs["op"], attrs["group"]),)


ALL_REDUCE = register(OpDef(
    name="all_reduce", kind="other", impl=_all_reduce_impl, infer=_all_reduce_infer,
    # element-wise across ranks: the whole batch is reduced in one collective
    vjp=_all_reduce_vjp, batch=elementwise_batch, effects=True, attrs=("op", "group"),
    doc="the sum or mean of x over every rank of the group (MPI all-reduce; one process: x); "
        "never dropped or merged by the compiler"))


class CollectiveMethods(OpBase):
    """Tensor methods of the collective ops (see ``OpMethods``)."""

    __slots__ = ()

    def all_reduce(self, op: str = "sum", group: str = "world") -> Any:
        """The sum or mean (``op``) of this value over every rank (out of place); the identity
        until ``aprender.distributed.init()`` joins a job of several processes."""
        problem = bad_arguments(op, group)
        if problem:
            raise shape_error("all_reduce", problem, self)
        problem = bad_dtype(op, np.dtype(self.dtype))
        if problem:
            raise DTypeError(with_location(f"all_reduce: {problem}; operand {describe(self)}"))
        return self._apply(ALL_REDUCE, (self,), {"op": op, "group": group})
