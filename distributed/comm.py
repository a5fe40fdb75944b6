"""Communication across the ranks of a data-parallel job, over MPI (``mpi4py``).

``init()`` imports mpi4py (the ``mpi`` extra), duplicates ``COMM_WORLD`` (so the user's own
collectives on COMM_WORLD never match these), installs the backend of the ``all_reduce`` op and
a ``sys.excepthook`` that prints ``rank R: <traceback>`` and aborts the whole job when any rank
dies of an uncaught exception, so the others stop instead of waiting for it.

Every collective is nonblocking MPI polled until a deadline (``init(timeout=)``, or ``timeout=``
per call): a rank that never arrives makes the others raise ``DistributedError`` naming the
collective (and the excepthook turns that into an abort). Before moving data the ranks
all-reduce a 64-bit digest of (collective, dtype, shape): ranks that disagree all raise, naming
every rank's collective and shape, instead of hanging or mixing mismatched buffers.

Before ``init()`` (and without ``mpiexec``) the job is one process: rank 0 of 1. The
collectives call ``init()`` themselves when needed.
"""

from __future__ import annotations

import hashlib
import sys
import time
import traceback
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from ..errors import AprenderError, CompileError, DTypeError, ShapeError, with_location
from ..ir.graph import type_str
from ..ir.ops import collective
from ..runtime.state import STATE, GradMode
from ..runtime.tensor import Tensor

__all__ = ["DistributedError", "PendingAllReduce", "all_gather", "all_reduce",
           "allreduce_array", "barrier", "broadcast", "iallreduce_start", "init",
           "is_initialized", "rank", "world_size"]

#: how long a waiting rank polls without sleeping (MPI progresses a nonblocking collective
#: only while the ranks poll it: sleeping ranks slowed a 2.6 MB all-reduce from 2 to 2.9 ms),
#: then sleeps from 10 us up to 1 ms per poll
_SPIN_S = 0.1
_MAX_SLEEP_S = 1e-3
#: bytes of one rank's description in a mismatch report
_DESCRIPTION_BYTES = 160


class DistributedError(AprenderError, RuntimeError):
    """A collective that timed out, or ranks that disagree on what they exchange."""


class _World:
    """The job as ``init()`` found it."""

    mpi: ModuleType | None = None
    comm: Any = None
    rank = 0
    size = 1
    timeout = 60.0
    #: requests that timed out, with their buffers: MPI may still write into those
    abandoned: list[tuple[Any, ...]] = []


def init(timeout: float = 60.0) -> None:
    """Join the MPI job (``mpiexec -n N python ...``; without mpiexec: one process).

    ``timeout``: seconds a collective waits for the other ranks before raising. Calling
    ``init`` again only sets the timeout.
    """
    if timeout <= 0:
        raise ValueError(f"init: timeout must be positive, got {timeout}")
    _World.timeout = float(timeout)
    if _World.mpi is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("aprender.distributed.init: mpi4py is not installed; install the "
                          "extra with pip install 'aprender[mpi]'") from e
    _World.comm = MPI.COMM_WORLD.Dup()
    _World.rank, _World.size = _World.comm.Get_rank(), _World.comm.Get_size()
    _World.mpi = MPI
    collective.set_backend(_op_backend)
    sys.excepthook = _AbortOnError(sys.excepthook)


def is_initialized() -> bool:
    """Whether ``init()`` has run in this process."""
    return _World.mpi is not None


def rank() -> int:
    """This process's rank (0 before ``init()``)."""
    return _World.rank


def world_size() -> int:
    """The number of ranks (1 before ``init()``)."""
    return _World.size


class _AbortOnError:
    """``sys.excepthook``: print the traceback, each line prefixed ``rank R:``, then abort every
    rank of the job (a job of one process exits as Python would)."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, kind: type[BaseException], error: BaseException,
                 tb: TracebackType | None) -> None:
        if _World.size == 1:
            self.previous(kind, error, tb)
            return
        text = "".join(traceback.format_exception(kind, error, tb))
        sys.stderr.write("".join(f"rank {_World.rank}: {line}\n" for line in text.splitlines()))
        sys.stderr.flush()
        sys.stdout.flush()
        _World.mpi.COMM_WORLD.Abort(1)


# --- waiting and agreeing ----------------------------------------------------------------------
def _joined() -> Any:
    """The communicator (``init()`` first if needed)."""
    if _World.mpi is None:
        init(_World.timeout)
    return _World.comm


def _wait(request: Any, what: str, timeout: float | None, buffers: tuple) -> None:
    """Poll ``request`` until it completes; a DistributedError after ``timeout`` seconds."""
    limit = _World.timeout if timeout is None else float(timeout)
    start = time.monotonic()
    pause = 1e-5
    while not request.Test():
        waited = time.monotonic() - start
        if waited > limit:
            _World.abandoned.append((request, *buffers))
            raise DistributedError(with_location(
                f"{what}: timed out after {limit:g} s on rank {_World.rank} of {_World.size}: "
                f"another rank did not reach this collective (it failed, hangs, or skipped "
                f"it); raise the limit with init(timeout=) or timeout="))
        if waited > _SPIN_S:
            time.sleep(pause)
            pause = min(pause * 2, _MAX_SLEEP_S)


def _digest(text: str) -> int:
    """A 62-bit digest of ``text`` (the same on every rank, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 2


def _agree(what: str, description: str, timeout: float | None) -> None:
    """Every rank states what it is about to exchange; a DistributedError on every rank naming
    each rank's statement when they differ. Also a barrier."""
    comm, mpi = _World.comm, _World.mpi
    sig = _digest(description)
    mine = np.array([sig, -sig], dtype=np.int64)
    both = np.empty(2, dtype=np.int64)
    _wait(comm.Iallreduce(mine, both, op=mpi.MAX), what, timeout, (mine, both))
    if both[0] == -both[1]:
        return
    text = np.zeros(_DESCRIPTION_BYTES, dtype=np.uint8)
    encoded = description.encode()[:_DESCRIPTION_BYTES]
    text[:len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
    everyone = np.empty((_World.size, _DESCRIPTION_BYTES), dtype=np.uint8)
    _wait(comm.Iallgather(text, everyone), what, timeout, (text, everyone))
    stated = "; ".join(f"rank {r}: {_text(row)}" for r, row in enumerate(everyone))
    raise DistributedError(with_location(f"{what}: the ranks disagree on what they exchange "
                                         f"({stated})"))


def _text(row: np.ndarray) -> str:
    return row.tobytes().rstrip(b"\0").decode(errors="replace")


def _describe(what: str, array: np.ndarray) -> str:
    return f"{what} of {type_str(array.shape, array.dtype)}"


# --- arrays ------------------------------------------------------------------------------------
class PendingAllReduce:
    """An all-reduce in flight (``iallreduce_start``): ``wait()`` gives the result."""

    __slots__ = ("_request", "_keep", "_result", "_mean", "_what", "_timeout")

    def __init__(self, request: Any, keep: tuple, result: np.ndarray, mean: bool, what: str,
                 timeout: float | None) -> None:
        self._request, self._keep, self._result = request, keep, result
        self._mean, self._what, self._timeout = mean, what, timeout

    def test(self) -> bool:
        """Whether it has completed (also lets MPI make progress on it)."""
        return self._request is None or bool(self._request.Test())

    def wait(self) -> np.ndarray:
        """The reduced array (waits at most the timeout; calling again gives it again)."""
        if self._request is not None:
            _wait(self._request, self._what, self._timeout, self._keep)
            self._request = self._keep = None
            if self._mean:
                self._result /= _World.size
        return self._result


def _check_reduction(fn: str, array: np.ndarray, op: str, out: np.ndarray | None) -> None:
    problem = collective.bad_arguments(op, "world")
    if problem:
        raise ShapeError(with_location(f"{fn}: {problem}"))
    problem = collective.bad_dtype(op, array.dtype)
    if problem:
        raise DTypeError(with_location(f"{fn}: {problem}"))
    if out is not None and (out.shape != array.shape or out.dtype != array.dtype
                            or not out.flags.c_contiguous or not out.flags.writeable):
        raise ShapeError(with_location(
            f"{fn}: out= must be a writeable C-contiguous {type_str(array.shape, array.dtype)} "
            f"array like the input, got {type_str(out.shape, out.dtype)}"))


def iallreduce_start(array: np.ndarray, op: str = "sum", *, out: np.ndarray | None = None,
                     timeout: float | None = None, check: bool = True) -> PendingAllReduce:
    """Start an all-reduce (``op``: "sum" or "mean") of ``array`` over every rank; ``wait()``
    on the result gives the reduced array: ``out`` when given (``out=array`` reduces in
    place), else a new one. Do not touch ``array`` or ``out`` before ``wait()`` returns.

    ``check``: first make sure every rank reduces the same dtype and shape (a small blocking
    all-reduce; pass False where that is known, e.g. buffers laid out alike everywhere).
    """
    array = np.asarray(array)
    _check_reduction("iallreduce_start", array, op, out)
    comm = _joined()
    what = _describe(f"all_reduce({op})", array)
    result = np.empty(array.shape, array.dtype) if out is None else out
    if _World.size == 1:
        if result is not array:
            np.copyto(result, array)
        return PendingAllReduce(None, (), result, False, what, timeout)
    if check:
        _agree(what, what, timeout)
    flat = result.reshape(-1)
    if result is array:
        request = comm.Iallreduce(_World.mpi.IN_PLACE, flat, op=_World.mpi.SUM)
        keep: tuple = (flat,)
    else:
        if np.shares_memory(result, array):
            raise ShapeError(with_location("iallreduce_start: out= overlaps the input without "
                                           "being it (pass out=array to reduce in place)"))
        send = np.ascontiguousarray(array).reshape(-1)
        request = comm.Iallreduce(send, flat, op=_World.mpi.SUM)
        keep = (send, flat)
    return PendingAllReduce(request, keep, result, op == "mean", what, timeout)


def allreduce_array(array: np.ndarray, op: str = "sum", *, out: np.ndarray | None = None,
                    timeout: float | None = None, check: bool = True) -> np.ndarray:
    """The sum or mean (``op``) of ``array`` over every rank (see ``iallreduce_start``)."""
    return iallreduce_start(array, op, out=out, timeout=timeout, check=check).wait()


def _op_backend(x: np.ndarray, op: str, group: str) -> np.ndarray:
    """What the ``all_reduce`` op's kernel calls once ``init()`` has run."""
    return allreduce_array(x, op)


# --- tensors -----------------------------------------------------------------------------------
def _refuse_in_trace(fn: str) -> None:
    if STATE.recorder is not None:
        raise CompileError(with_location(
            f"{fn}: not inside a compiled or traced function (it is not an op of the graph); "
            f"call it outside, or use all_reduce, which is"))


def _as_tensor(t: Any) -> Tensor:
    return t if isinstance(t, Tensor) else Tensor(t)


def barrier(*, timeout: float | None = None) -> None:
    """Wait until every rank has arrived here."""
    _joined()
    if _World.size > 1:
        _agree("barrier", "barrier", timeout)


def all_reduce(t: Any, op: str = "sum", *, timeout: float | None = None) -> Tensor:
    """The sum or mean (``op``) of ``t`` over every rank, out of place, through the IR op
    ``all_reduce``: recorded for ``backward()`` and part of a compiled graph. ``timeout`` (this
    call's forward, eager) overrides ``init``'s."""
    _joined()
    t = _as_tensor(t)
    if timeout is None:
        return t.all_reduce(op)
    previous, _World.timeout = _World.timeout, float(timeout)
    try:
        return t.all_reduce(op)
    finally:
        _World.timeout = previous


def broadcast(t: Tensor, root: int = 0, *, timeout: float | None = None) -> Tensor:
    """Overwrite ``t`` in place (no gradient recorded) with rank ``root``'s values; returns
    ``t``. Not inside compiled functions."""
    _refuse_in_trace("broadcast")
    if not isinstance(t, Tensor):
        raise DTypeError(with_location(f"broadcast: writes into a Tensor in place, got "
                                       f"{type(t).__name__}"))
    comm = _joined()
    if not 0 <= root < _World.size:
        raise ShapeError(with_location(f"broadcast: root {root} is not a rank of "
                                       f"{_World.size}"))
    if _World.size == 1:
        return t
    what = _describe(f"broadcast(root={root})", t._data)
    _agree(what, what, timeout)
    buf = np.ascontiguousarray(t._data).reshape(-1) if _World.rank == root \
        else np.empty(t._data.size, dtype=t._data.dtype)
    _wait(comm.Ibcast(buf, root=root), what, timeout, (buf,))
    if _World.rank != root:
        with GradMode(False):
            t.assign(buf.reshape(t.shape))
    return t


def all_gather(t: Any, *, timeout: float | None = None) -> Tensor:
    """Every rank's ``t`` stacked: shape ``[world_size, *t.shape]`` (no gradient). Not inside
    compiled functions."""
    _refuse_in_trace("all_gather")
    comm = _joined()
    data = _as_tensor(t)._data
    if _World.size == 1:
        return Tensor(data[None].copy())
    what = _describe("all_gather", data)
    _agree(what, what, timeout)
    send = np.ascontiguousarray(data).reshape(-1)
    out = np.empty((_World.size, *data.shape), dtype=data.dtype)
    _wait(comm.Iallgather(send, out.reshape(_World.size, send.size)), what, timeout,
          (send, out))
    return Tensor(out)
