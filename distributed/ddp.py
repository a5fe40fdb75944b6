"""``DistributedDataParallel``: one model replica per rank, gradients averaged over the ranks.

Construction checks that every rank holds the same parameters (names, shapes, dtypes) and
copies rank 0's parameters and buffers to every rank. After ``loss.backward()`` each
parameter's gradient is the mean over the ranks, so every replica takes the same optimizer
step and the replicas stay equal: N ranks with batch B train as one process with batch N*B.

Gradients travel in buckets: the parameters in reverse registration order (about the order
the backward finishes them), grouped up to ``bucket_mb`` megabytes of one dtype, each bucket
one contiguous buffer and one all-reduce. Eagerly, a gradient-ready hook of the engine copies
each gradient into its bucket as soon as the backward has finished it, and a full bucket
starts a nonblocking all-reduce at once (buckets start in order, the same on every rank, as
MPI requires), so communication overlaps the rest of the backward; at its end the reduced
buckets are written back into the gradients. Inside ``ap.compile`` the same reduction is
traced as ops (``concat`` of the gradients, ``all_reduce(mean)``, views back), so the
compiled step holds forward, backward, all-reduces and optimizer update in one function.

A parameter that got no gradient on a rank contributes zeros there, and every parameter ends
the backward with a gradient (zeros where no rank used it; PyTorch's
``find_unused_parameters=True`` leaves those None): an optimizer then updates it as a
parameter with a zero gradient (weight decay, momentum).
"""

from __future__ import annotations

import functools
import json
import weakref
from typing import Any

import numpy as np

from ..errors import DTypeError, describe, with_location
from ..ir.ops.collective import bad_dtype
from ..nn.module import Module
from ..runtime import engine
from ..runtime.functional import concat
from ..runtime.state import STATE, GradMode
from ..runtime.tensor import GradState, Tensor, grad_state, own_grad, set_grad
from . import comm

__all__ = ["DistributedDataParallel"]


class DistributedDataParallel(Module):
    """Data-parallel training of ``module`` over the ranks of the MPI job (see the module
    docstring). ``forward`` runs ``module`` (``ddp.module``); state dict keys carry the
    ``module.`` prefix, as in PyTorch.

    ``bucket_mb``: the size of a gradient bucket in megabytes (smaller buckets start earlier,
    larger ones mean fewer all-reduces). ``broadcast_buffers``: in training mode, every forward
    first copies rank 0's buffers (BatchNorm's running statistics) to every rank.
    """

    def __init__(self, module: Module, bucket_mb: float = 25.0,
                 broadcast_buffers: bool = True) -> None:
        if not isinstance(module, Module):
            raise DTypeError(with_location(f"DistributedDataParallel: wraps a Module, got "
                                           f"{type(module).__name__}"))
        if not bucket_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_mb must be positive, got "
                             f"{bucket_mb}")
        if not comm.is_initialized():  # (init() again would reset a timeout given to it)
            comm.init()
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        named = list(module.named_parameters())
        _check_dtypes(named, list(module.named_buffers()) if broadcast_buffers else [])
        _check_same_parameters(named, list(module.named_buffers()))
        for _, t in [*named, *module.named_buffers()]:
            comm.broadcast(t, 0)
        self._reducer = _Reducer([p for _, p in named], bucket_mb)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.broadcast_buffers and self.training and comm.world_size() > 1:
            _sync_buffers(self.module.buffers())
        return self.module(*args, **kwargs)

    def bucket_sizes(self) -> list[int]:
        """The number of parameters in each gradient bucket, in the order they are reduced."""
        return [len(b.params) for b in self._reducer.buckets]

    def extra_repr(self) -> str:
        return f"buckets={self.bucket_sizes()}, world_size={comm.world_size()}"


# --- construction ------------------------------------------------------------------------------
def _gather_text(text: str) -> list[str]:
    """Every rank's ``text``, in rank order."""
    n, me = comm.world_size(), comm.rank()
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    lengths = np.zeros(n)
    lengths[me] = data.size
    lengths = comm.allreduce_array(lengths, "sum")
    rows = np.zeros((n, int(lengths.max())))
    rows[me, :data.size] = data
    rows = comm.allreduce_array(rows, "sum")
    return [bytes(rows[r, :int(lengths[r])].astype(np.uint8)).decode() for r in range(n)]


def _check_same_parameters(params: list[tuple[str, Tensor]],
                           buffers: list[tuple[str, Tensor]]) -> None:
    """A DistributedError on every rank when ranks hold different parameters or buffers."""
    if comm.world_size() == 1:
        return
    mine = {kind: [[name, list(t.shape), str(t.dtype)] for name, t in items]
            for kind, items in (("parameter", params), ("buffer", buffers))}
    ranks = [json.loads(text) for text in _gather_text(json.dumps(mine))]
    for kind in ("parameter", "buffer"):
        for r in range(1, len(ranks)):
            problem = _difference(kind, ranks[0][kind], ranks[r][kind], r)
            if problem:
                raise comm.DistributedError(with_location(
                    f"DistributedDataParallel: the ranks hold different models: {problem}; "
                    f"every rank must build the same model"))


def _difference(kind: str, first: list, other: list, r: int) -> str | None:
    """How rank ``r``'s ``(name, shape, dtype)`` list differs from rank 0's (None: it does
    not)."""
    for (name0, shape0, dtype0), (name, shape, dtype) in zip(first, other, strict=False):
        if name0 != name:
            return f"{kind} {name0!r} on rank 0 is {name!r} on rank {r}"
        if shape0 != shape or dtype0 != dtype:
            return (f"{kind} {name!r} has shape {shape0} ({dtype0}) on rank 0 but {shape} "
                    f"({dtype}) on rank {r}")
    if len(first) != len(other):
        longer, who = (first, 0) if len(first) > len(other) else (other, r)
        extra = longer[min(len(first), len(other))]
        return (f"rank 0 has {len(first)} {kind}s, rank {r} has {len(other)} ({kind} "
                f"{extra[0]!r} {extra[1]} is only on rank {who})")
    return None


def _check_dtypes(params: list[tuple[str, Tensor]], buffers: list[tuple[str, Tensor]]) -> None:
    """Gradients are averaged (float32/float64) and buffers summed from rank 0 (those or
    integers): anything else is refused now rather than at the first backward or forward."""
    for kind, items, op in (("parameter", params, "mean"), ("buffer", buffers, "sum")):
        for name, t in items:
            problem = bad_dtype(op, np.dtype(t.dtype))
            if problem:
                raise DTypeError(with_location(
                    f"DistributedDataParallel: {kind} {name!r} ({describe(t)}) cannot be "
                    f"synchronised: the all-reduce {problem}"))


def _sync_buffers(buffers: list[Tensor]) -> None:
    """Overwrite every rank's buffers with rank 0's, as ops (so a compiled step does it too):
    a sum over the ranks of rank 0's values and everyone else's zeros, one per dtype."""
    groups: dict[np.dtype, list[Tensor]] = {}
    for b in buffers:
        groups.setdefault(b.dtype, []).append(b)
    with GradMode(False):
        for group in groups.values():
            flat = _flatten(group) if comm.rank() == 0 else \
                Tensor(np.zeros(sum(b.size for b in group), dtype=group[0].dtype))
            summed = flat.all_reduce("sum")
            for b, piece in zip(group, _unflatten(summed, group), strict=True):
                b.assign(piece)


def _flatten(tensors: list[Tensor]) -> Tensor:
    pieces = [t.reshape(-1) for t in tensors]
    return pieces[0] if len(pieces) == 1 else concat(pieces)


def _unflatten(flat: Tensor, like: list[Any]) -> list[Tensor]:
    out, start = [], 0
    for t in like:
        out.append(flat[start:start + t.size].reshape(t.shape))
        start += t.size
    return out


# --- gradient buckets --------------------------------------------------------------------------
class _Bucket:
    """Parameters whose gradients travel together in one contiguous buffer."""

    __slots__ = ("params", "offsets", "buffer", "mean", "filled", "missing", "handle")

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.offsets = np.cumsum([0] + [p.size for p in params]).tolist()
        self.buffer = np.empty(self.offsets[-1], dtype=params[0].dtype)
        self.mean = np.empty_like(self.buffer)  # kept: a new array each time costs page faults
        self.filled = [False] * len(params)
        self.missing = len(params)
        self.handle: comm.PendingAllReduce | None = None

    def slot(self, i: int) -> np.ndarray:
        """Parameter ``i``'s part of the buffer, in its shape."""
        p = self.params[i]
        return self.buffer[self.offsets[i]:self.offsets[i + 1]].reshape(p.shape)

    def reset(self) -> None:
        self.filled = [False] * len(self.params)
        self.missing = len(self.params)
        self.handle = None


def _make_buckets(params: list[Tensor], bucket_mb: float) -> list[_Bucket]:
    """Parameters in reverse order, grouped by dtype into buckets of about ``bucket_mb``."""
    limit = bucket_mb * 2 ** 20
    groups: list[list[Tensor]] = []
    size = 0.0
    for p in reversed(params):
        if not groups or p.dtype != groups[-1][0].dtype or size >= limit:
            groups.append([])
            size = 0.0
        groups[-1].append(p)
        size += p._data.nbytes
    return [_Bucket(g) for g in groups]


def _on_ready(reducer: weakref.ref, leaf: Tensor, grad: Tensor) -> None:
    r = reducer()
    if r is not None:
        r.ready(leaf, grad)


def _remove(handles: list[engine.HookHandle]) -> None:
    for h in handles:
        h.remove()


class _Reducer:
    """The gradient buckets of one DDP model and the state of the backward in progress. (A
    slotted object: ``compile`` does not walk into it, so its changing state is no guard.)"""

    __slots__ = ("buckets", "where", "next", "backward", "__weakref__")

    def __init__(self, params: list[Tensor], bucket_mb: float) -> None:
        self.buckets = _make_buckets(params, bucket_mb)
        self.where = {id(p): (k, i) for k, b in enumerate(self.buckets)
                      for i, p in enumerate(b.params)}
        self.next = 0  # the next bucket to start (they start in order)
        self.backward: object | None = None  # engine.current_backward() of the last backward
        hook = functools.partial(_on_ready, weakref.ref(self))
        handles = [engine.register_grad_ready_hook(p, hook) for p in params]
        weakref.finalize(self, _remove, handles)

    def ready(self, leaf: Tensor, grad: Tensor) -> None:
        """Gradient-ready hook: copy ``leaf``'s gradient into its bucket; start every bucket
        that is now complete (in order)."""
        token = engine.current_backward()
        if token is not self.backward:  # the first gradient of a new backward
            self.backward = token
            self.next = 0
            for b in self.buckets:
                b.reset()
            engine.queue_callback(self.finish)
        if STATE.recorder is not None:  # traced: finish() records the whole reduction
            return
        k, i = self.where[id(leaf)]
        bucket = self.buckets[k]
        old = leaf._grad  # the gradient so far: backward adds this one into it afterwards
        if old is None:
            np.copyto(bucket.slot(i), grad._data)
        else:
            np.add(old._data, grad._data, out=bucket.slot(i))
        bucket.filled[i] = True
        bucket.missing -= 1
        if bucket.missing == 0:
            self.start_ready()
        for b in self.buckets[:self.next]:  # let MPI progress the ones in flight
            if not b.handle.test():
                break

    def start_ready(self) -> None:
        while self.next < len(self.buckets) and self.buckets[self.next].missing == 0:
            bucket = self.buckets[self.next]
            bucket.handle = comm.iallreduce_start(bucket.buffer, "mean", out=bucket.mean,
                                                  check=False)  # laid out alike everywhere
            self.next += 1

    def finish(self) -> None:
        """End of the backward: reduce what is left, wait, write the means into the grads."""
        self.backward = None
        if STATE.recorder is not None:
            self.finish_traced()
            return
        for bucket in self.buckets[self.next:]:
            for i, p in enumerate(bucket.params):
                if not bucket.filled[i]:  # no gradient from this backward
                    slot = bucket.slot(i)
                    if p._grad is None:
                        slot.fill(0)
                    else:
                        np.copyto(slot, p._grad._data)
            bucket.missing = 0
        self.start_ready()
        for bucket in self.buckets:
            mean = bucket.handle.wait()
            bucket.handle = None
            for i, p in enumerate(bucket.params):
                value = mean[bucket.offsets[i]:bucket.offsets[i + 1]].reshape(p.shape)
                if grad_state(p) is GradState.OWNED:
                    np.copyto(p._grad._data, value)
                    p._grad._vc[0] += 1
                else:
                    own_grad(p, np.array(value, copy=True))

    def finish_traced(self) -> None:
        """The same reduction as ops on the traced gradients, bucket by bucket."""
        with GradMode(False):
            for bucket in self.buckets:
                grads = [p.grad() for p in bucket.params]
                grads = [Tensor(np.zeros(p.shape, dtype=p.dtype)) if g is None else g
                         for p, g in zip(bucket.params, grads, strict=True)]
                mean = _flatten(grads).all_reduce("mean")
                for p, g in zip(bucket.params, _unflatten(mean, bucket.params), strict=True):
                    set_grad(p, g)
