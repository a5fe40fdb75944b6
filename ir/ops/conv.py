"""Convolution and pooling over channels-first images of any number of spatial dimensions
(``[N, C, L]``, ``[N, C, H, W]``, ...), with PyTorch's semantics.

Convolution is im2col and BLAS: the input's windows are copied once into a column array
``[N, groups, C/groups * prod(K), P]`` and multiplied by the weight ``[groups, O/groups,
C/groups * prod(K)]`` in one (batched) matmul, which gives the output in NCHW order with no
transpose. The input gradient (``conv_input_grad``, a transposed convolution) is one matmul back
to columns and a col2im that adds each kernel tap's slice into the padded input: a loop over
the ``prod(K)`` taps, never over pixels. The weight gradient (``conv_weight_grad``) is one
matmul of the columns and the gradient. The three ops are each other's VJPs, so gradients of
gradients are convolutions again.

Stride-1 convolutions (the common case) use a flat layout (``_Flat``) in which every tap is one
contiguous range of the flattened padded input, so im2col and col2im are long contiguous copies
and adds; other strides copy a ``sliding_window_view``. Large temporaries live in per-thread
scratch arrays reused from call to call (``_Scratch``); results are always fresh arrays.

Pooling loops over kernel taps the same way: ``max_pool`` (padding with -inf; the gradient goes
to the first maximum of each window, as in PyTorch, through ``max_pool_grad``, whose own VJP is
``max_pool_select``), ``avg_pool`` and its transpose ``avg_pool_grad``.

Under ``vmap`` the batch folds into N, or, for per-example weights, into the channels with
the groups multiplied by the batch size: still one convolution (see the batching section).

The functions at the bottom (``conv``, ``max_pool``, ...) take normalised attributes (tuples
per spatial dimension) and work on eager tensors and symbolic values alike; argument checking
and PyTorch's argument forms live in ``nn/functional/conv.py``.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..registry import BatchInfo, OpDef, register
from .batching import with_batch
from .reductions import ones_vector

_ALL2 = (slice(None), slice(None))


# --- geometry ----------------------------------------------------------------------------------

def conv_out_size(size: int, k: int, s: int, lo: int, hi: int, d: int) -> int:
    """Output length of a convolution along one dimension (may be < 1: too small an input)."""
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def pool_out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length of a pooling along one dimension, PyTorch's rule: with ``ceil_mode`` the
    last window may run past the input but must start inside it or its left padding."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _taps(kernel: tuple, stride: tuple, dilation: tuple, out: tuple):
    """``(tap number, offsets, index)`` per kernel offset: the index selects, from the padded
    input, the elements that offset meets in every window (a strided slice per dimension)."""
    for n, offs in enumerate(itertools.product(*(range(k) for k in kernel))):
        yield n, offs, _ALL2 + tuple(slice(i * d, i * d + s * (o - 1) + 1, s)
                               for i, d, s, o in zip(offs, dilation, stride, out, strict=True))


def _pad(x: np.ndarray, pads: tuple, value: float) -> np.ndarray:
    """``x`` with ``pads[i] = (lo, hi)`` elements of ``value`` around spatial dimension ``i``."""
    if not any(lo or hi for lo, hi in pads):
        return x
    shape = x.shape[:2] + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads, strict=True))
    out = np.full(shape, value, dtype=x.dtype)
    out[_ALL2 + tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[2:], pads, strict=True))] = x
    return out


def _crop(xp: np.ndarray, pads: tuple, size: tuple) -> np.ndarray:
    if not any(lo or hi for lo, hi in pads) and xp.shape[2:] == tuple(size):
        return xp
    return xp[_ALL2 + tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, size, strict=True))]


class _Scratch(threading.local):
    """Work arrays reused from call to call, per thread: im2col columns and other large
    temporaries that never leave a kernel. Fresh large arrays cost page faults (glibc hands
    freed memory back to the system and faults it in again), which measured as much as the
    arithmetic. Keyed by slot, shape, dtype and a tag; a new array is zero-filled, so a buffer
    whose border is never written (padding) keeps its zeros. At most ``LIMIT`` bytes are
    kept, the least recently used dropped first."""

    LIMIT = 128 << 20

    def __init__(self) -> None:
        self.arrays: dict[tuple, np.ndarray] = {}

    def get(self, slot: str, shape: tuple, dtype: Any, tag: Any = None) -> np.ndarray:
        key = (slot, shape, np.dtype(dtype), tag)
        a = self.arrays.pop(key, None)
        if a is None:
            a = np.zeros(shape, dtype=dtype)
            if a.nbytes > self.LIMIT // 4:
                return a
        self.arrays[key] = a  # the most recently used last
        total = sum(v.nbytes for v in self.arrays.values())
        while total > self.LIMIT:
            total -= self.arrays.pop(next(iter(self.arrays))).nbytes
        return a


_SCRATCH = _Scratch()


# --- convolution -------------------------------------------------------------------------------

def _columns(x: np.ndarray, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple,
             groups: int) -> tuple[np.ndarray, tuple]:
    """im2col: ``x`` ``[N, C, *S]`` as columns ``[N, groups, C/groups * prod(K), prod(out)]``
    (one copy of a strided window view) and the output's spatial shape."""
    nd = len(kernel)
    xp = _pad(x, padding, 0)
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    win = sliding_window_view(xp, extent, axis=tuple(range(2, 2 + nd)))
    win = win[_ALL2 + tuple(slice(None, None, s) for s in stride)
              + tuple(slice(None, None, d) for d in dilation)]   # [N, C, *out, *K]
    out = win.shape[2:2 + nd]
    order = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
    win = win.transpose(order)                                   # [N, C, *K, *out]
    col = _SCRATCH.get("col", win.shape, x.dtype)
    np.copyto(col, win)
    n, c = x.shape[:2]
    return col.reshape(n, groups, c // groups * math.prod(kernel), math.prod(out)), out


class _Flat:
    """The stride-1 layout that makes im2col and col2im contiguous copies and adds.

    The padded input is flattened over its spatial dimensions (plus ``slack`` zeros at the
    end). Output position ``(h, w, ...)`` then reads, for kernel tap ``t``, the flat element
    ``offset[t] + h * Wp... + w``: if the output grid is widened to the padded extents in every
    dimension but the first (``ext``; the extra positions are computed and dropped), each tap
    is one contiguous range of length ``prod(ext)`` of every ``[n, c]`` row. So im2col is
    ``prod(K)`` slice copies and col2im ``prod(K)`` slice adds, each with long inner loops.
    Used when every stride is 1 and the widened grid wastes little."""

    __slots__ = ("padded", "out", "ext", "offsets", "slack")

    def __init__(self, size, kernel, padding, dilation):
        padded = tuple(n + lo + hi for n, (lo, hi) in zip(size, padding, strict=True))
        self.padded = padded
        self.out = tuple(p - d * (k - 1) for p, k, d in zip(padded, kernel, dilation,
                                                            strict=True))
        self.ext = self.out[:1] + padded[1:]
        steps = tuple(math.prod(padded[i + 1:]) for i in range(len(padded)))
        self.offsets = tuple(
            sum(i * d * st for i, d, st in zip(offs, dilation, steps, strict=True))
            for offs in itertools.product(*(range(k) for k in kernel)))
        self.slack = sum((k - 1) * d * st for k, d, st in zip(kernel[1:], dilation[1:],
                                                              steps[1:], strict=True))

    @staticmethod
    def plan(size, kernel, stride, padding, dilation) -> _Flat | None:
        """The layout for these geometry attributes (computed once per geometry: a conv step
        asks three times per layer), or None when it does not apply."""
        return _flat_plan(tuple(size), tuple(kernel), tuple(stride),
                          tuple(tuple(p) for p in padding), tuple(dilation))

    def rows(self, x: np.ndarray, padding: tuple) -> np.ndarray:
        """``x`` zero-padded, flattened: ``[N, C, prod(padded) + slack]``."""
        n, c = x.shape[:2]
        length = math.prod(self.padded)
        if self.padded == x.shape[2:] and not self.slack:
            return x.reshape(n, c, length)
        # tagged with the written region, so the zeros around it are never overwritten
        buf = _SCRATCH.get("rows", (n, c, length + self.slack), x.dtype,
                           (padding, x.shape[2:]))
        inner = buf[:, :, :length].reshape((n, c) + self.padded)
        inner[_ALL2 + tuple(slice(lo, lo + s) for (lo, _), s in zip(padding, x.shape[2:],
                                                                    strict=True))] = x
        return buf

    def columns(self, x: np.ndarray, padding: tuple, groups: int) -> np.ndarray:
        """im2col: ``[N, groups, C/groups * prod(K), prod(ext)]``."""
        n, c = x.shape[:2]
        rows = self.rows(x, padding)
        width = math.prod(self.ext)
        col = _SCRATCH.get("col", (n, c, len(self.offsets), width), x.dtype)
        for t, off in enumerate(self.offsets):
            col[:, :, t] = rows[:, :, off:off + width]
        return col.reshape(n, groups, c // groups * len(self.offsets), width)

    def widen(self, g: np.ndarray) -> np.ndarray:
        """An output-shaped ``g`` on the widened grid (zeros at the extra positions), flat."""
        n, o = g.shape[:2]
        if self.ext == self.out:
            return g.reshape(n, o, math.prod(self.out))
        wide = _SCRATCH.get("wide", (n, o) + self.ext, g.dtype, self.out)  # zeros stay
        wide[_ALL2 + tuple(slice(0, k) for k in self.out)] = g
        return wide.reshape(n, o, math.prod(self.ext))

    def narrow(self, y: np.ndarray) -> np.ndarray:
        """Values on the widened grid ``[N, O, prod(ext)]`` cut to the output ``[N, O, *out]``."""
        y = y.reshape(y.shape[:2] + self.ext)
        if self.ext == self.out:
            return y
        return np.ascontiguousarray(y[_ALL2 + tuple(slice(0, k) for k in self.out)])


@functools.lru_cache(maxsize=256)
def _flat_plan(size, kernel, stride, padding, dilation) -> _Flat | None:
    if any(s != 1 for s in stride):
        return None
    flat = _Flat(size, kernel, padding, dilation)
    return flat if math.prod(flat.ext) <= 1.5 * math.prod(flat.out) else None


# --- batching (vmap) ---------------------------------------------------------------------------
# Images fold the batch into their leading axis N; a batched weight (per-example weights, as
# vmap(grad) of a convolution makes) folds the batch into a channel axis instead, inside each
# group, with the groups multiplied by the batch size where both operands carry it: one
# convolution of every example, never a loop.

def _into_n(t: Any) -> Any:
    """A batched ``[B, N, ...]`` value as ``[B * N, ...]``."""
    return t.reshape((t.shape[0] * t.shape[1], *t.shape[2:]))


def _out_of_n(t: Any, size: int) -> Any:
    """``[B * N, ...]`` back to ``[B, N, ...]``."""
    return t.reshape((size, t.shape[0] // size, *t.shape[1:]))


def _fold(t: Any, axis: int, groups: int) -> Any:
    """A batched ``[B, *example]`` value as one example whose axis ``axis`` (``n`` channels in
    ``groups`` groups) holds ``groups * B * n/groups`` channels, ordered group, example,
    channel: each group's channels of every example side by side."""
    b, shape = t.shape[0], tuple(t.shape[1:])
    n = shape[axis]
    split = t.reshape((b, *shape[:axis], groups, n // groups, *shape[axis + 1:]))
    if math.prod(shape[:axis]) * groups > 1:   # else the batch axis moves past unit axes only
        split = split.transpose((*range(1, axis + 2), 0, *range(axis + 2, split.ndim)))
    return split.reshape((*shape[:axis], b * n, *shape[axis + 1:]))


def _unfold(t: Any, axis: int, groups: int, size: int) -> Any:
    """The inverse of ``_fold``: axis ``axis`` of ``t`` ordered group, example, channel, as a
    batched ``[size, *example]`` value."""
    shape = tuple(t.shape)
    m = shape[axis] // (groups * size)
    split = t.reshape((*shape[:axis], groups, size, m, *shape[axis + 1:]))
    if math.prod(shape[:axis]) * groups > 1:
        split = split.transpose((axis + 1, *range(axis + 1), *range(axis + 2, split.ndim)))
    return split.reshape((size, *shape[:axis], groups * m, *shape[axis + 1:]))


def _with_groups(at: dict, groups: int) -> dict:
    return {**at, "groups": groups}


def _images_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
    """Ops that treat every image alike (pooling and its gradients): the batch folded into N,
    an unbatched operand repeated for each example."""
    rows = tuple(_into_n(with_batch(x, b, info.size))
                 for x, b in zip(xs, batched, strict=True))
    return _out_of_n(rows[0]._apply(op, rows, attrs), info.size)


def _conv_impl(x, w, stride, padding, dilation, groups):
    n, o = x.shape[0], w.shape[0]
    w2 = w.reshape(groups, o // groups, math.prod(w.shape[1:]))
    flat = _Flat.plan(x.shape[2:], w.shape[2:], stride, padding, dilation)
    if flat is not None:
        col = flat.columns(x, padding, groups)                     # [N, g, C/g*K, prod(ext)]
        if flat.ext == flat.out:
            return np.matmul(w2, col).reshape((n, o) + flat.out)
        y = _SCRATCH.get("wide_out", (n, groups, o // groups, col.shape[-1]),
                         np.result_type(x, w))
        return flat.narrow(np.matmul(w2, col, out=y).reshape(n, o, col.shape[-1]))
    col, out = _columns(x, w.shape[2:], stride, padding, dilation, groups)
    return np.matmul(w2, col).reshape((n, o) + out)


def _check_conv(x_shape, w_shape, stride, padding, dilation, groups):
    nd = len(stride)
    if len(x_shape) != nd + 2 or len(w_shape) != nd + 2:
        raise ValueError(f"needs input [N, C, *spatial] and weight [O, C/groups, *kernel] with "
                         f"{nd} spatial dimensions, got input {list(x_shape)} and weight "
                         f"{list(w_shape)}")
    c, o = x_shape[1], w_shape[0]
    if groups < 1 or c % groups or o % groups:
        raise ValueError(f"groups={groups} must divide the input channels ({c}) and the "
                         f"output channels ({o})")
    if w_shape[1] * groups != c:
        raise ValueError(f"weight {list(w_shape)} with groups={groups} expects "
                         f"{w_shape[1] * groups} input channels, got {c}")
    out = []
    for n, k, s, (lo, hi), d in zip(x_shape[2:], w_shape[2:], stride, padding, dilation,
                                    strict=True):
        length = conv_out_size(n, k, s, lo, hi, d)
        if length < 1:
            raise ValueError(f"kernel {list(w_shape[2:])} (dilation {list(dilation)}) is larger "
                             f"than the padded input {list(x_shape[2:])} (padding "
                             f"{[list(p) for p in padding]})")
        out.append(length)
    return tuple(out)


def _conv_infer(x, w, stride, padding, dilation, groups):
    out = _check_conv(tuple(x.shape), tuple(w.shape), stride, padding, dilation, groups)
    return (x.shape[0], w.shape[0]) + out, np.result_type(x.dtype, w.dtype)


def _conv_attrs(at):
    return {k: at[k] for k in ("stride", "padding", "dilation", "groups")}


def _conv_vjp(g, out, x, at, needs):
    inp, w = x
    conv_at = _conv_attrs(at)
    gx = conv_input_grad(g, w, size=tuple(inp.shape[2:]), **conv_at) if needs[0] else None
    gw = conv_weight_grad(inp, g, kernel_size=tuple(w.shape[2:]), **conv_at) \
        if needs[1] else None
    return gx, gw


def _conv_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
    """Batched images only: the batch folded into N. A batched weight: the batch folded into
    the weight's output channels and, if the images are batched too, into their input channels
    with ``groups * B`` groups."""
    (x, w), (bx, bw), g = xs, batched, attrs["groups"]
    if not bw:
        return _out_of_n(_into_n(x)._apply(op, (_into_n(x), w), attrs), info.size)
    x = _fold(x, 1, g) if bx else x
    y = x._apply(op, (x, _fold(w, 0, g)), _with_groups(attrs, g * info.size if bx else g))
    return _unfold(y, 1, g, info.size)


CONV = register(OpDef(
    name="conv", kind="other", impl=_conv_impl, infer=_conv_infer, vjp=_conv_vjp,
    batch=_conv_batch, save_inputs=True, attrs=("stride", "padding", "dilation", "groups"),
    doc="convolution (cross-correlation) of x [N, C, *S] with w [O, C/groups, *K], PyTorch's "
        "conv1d/conv2d without bias; padding is ((lo, hi), ...) per spatial dimension; im2col "
        "and one batched BLAS matmul"))


def _conv_input_grad_impl(g, w, stride, padding, dilation, groups, size):
    n, o = g.shape[:2]
    out, kernel = g.shape[2:], w.shape[2:]
    c = w.shape[1] * groups
    w2t = w.reshape(groups, o // groups, math.prod(w.shape[1:])).transpose(0, 2, 1)  # [g, CgK, Og]
    flat = _Flat.plan(size, kernel, stride, padding, dilation)
    if flat is not None and (flat.ext == flat.out or np.isfinite(np.add.reduce(w, axis=None))):
        # (a non-finite weight times the zeros on the widened grid would leak nan)
        wide = flat.widen(g)
        width = wide.shape[-1]
        dtype = np.result_type(g, w)
        gcol = _SCRATCH.get("gcol", (n, groups, w2t.shape[1], width), dtype)
        np.matmul(w2t, wide.reshape(n, groups, o // groups, width), out=gcol)
        gcol = gcol.reshape(n, c, len(flat.offsets), width)
        length = math.prod(flat.padded)
        rows = _SCRATCH.get("grad_rows", (n, c, length + flat.slack), dtype)
        rows[:, :, :width] = gcol[:, :, 0]  # the first tap's offset is 0
        rows[:, :, width:].fill(0)
        for t in range(1, len(flat.offsets)):
            off = flat.offsets[t]
            rows[:, :, off:off + width] += gcol[:, :, t]
        gxp = rows[:, :, :length].reshape((n, c) + flat.padded)
        return _crop(gxp, padding, size).copy()  # (rows is a scratch array)
    gcol = np.matmul(w2t, g.reshape(n, groups, o // groups, math.prod(out)))  # [N, g, CgK, P]
    gcol = gcol.reshape((n, c) + tuple(kernel) + tuple(out))
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(size, padding, strict=True))
    gxp = np.zeros((n, c) + padded, dtype=gcol.dtype)
    for _, offs, index in _taps(kernel, stride, dilation, out):
        gxp[index] += gcol[_ALL2 + offs]
    return _crop(gxp, padding, size)


def _check_gradient(g_shape: tuple, x_shape: tuple, w_shape: tuple, stride: tuple,
                    padding: tuple, dilation: tuple, groups: int) -> None:
    """An output gradient must have the shape of ``conv`` of ``x_shape`` with ``w_shape``."""
    out = (x_shape[0], w_shape[0]) + _check_conv(x_shape, w_shape, stride, padding, dilation,
                                                 groups)
    if g_shape != out:
        raise ValueError(f"gradient {list(g_shape)} does not match the output {list(out)} of a "
                         f"convolution of {list(x_shape)} with {list(w_shape)}")


def _conv_input_grad_infer(g, w, stride, padding, dilation, groups, size):
    x_shape = (g.shape[0], w.shape[1] * groups) + tuple(size)
    _check_gradient(tuple(g.shape), x_shape, tuple(w.shape), stride, padding, dilation, groups)
    return x_shape, np.result_type(g.dtype, w.dtype)


def _conv_input_grad_vjp(g, out, x, at, needs):
    # out = J_x(w)^T grad: linear in (grad, w); <u, out> = <grad, conv(u, w)>
    grad, w = x
    conv_at = _conv_attrs(at)
    d_grad = conv(g, w, **conv_at) if needs[0] else None
    d_w = conv_weight_grad(g, grad, kernel_size=tuple(w.shape[2:]), **conv_at) \
        if needs[1] else None
    return d_grad, d_w


def _conv_input_grad_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                           info: BatchInfo) -> Any:
    """A batched gradient only: the batch folded into N. A batched weight: the batch folded
    into its input channels (so into the result's channels), or, with a batched gradient too,
    into the output channels of both, with ``groups * B`` groups."""
    (g, w), (bg, bw), groups = xs, batched, attrs["groups"]
    if not bw:
        return _out_of_n(_into_n(g)._apply(op, (_into_n(g), w), attrs), info.size)
    if bg:
        g = _fold(g, 1, groups)
        y = g._apply(op, (g, _fold(w, 0, groups)), _with_groups(attrs, groups * info.size))
    else:
        y = g._apply(op, (g, _fold(w, 1, 1)), attrs)
    return _unfold(y, 1, groups, info.size)


CONV_INPUT_GRAD = register(OpDef(
    name="conv_input_grad", kind="other", impl=_conv_input_grad_impl,
    infer=_conv_input_grad_infer, vjp=_conv_input_grad_vjp, batch=_conv_input_grad_batch,
    save_inputs=True,
    attrs=("stride", "padding", "dilation", "groups", "size"),
    doc="the input gradient of conv (a transposed convolution) of the output gradient g and "
        "the weight w, for an input of spatial size `size`: one matmul to columns and a col2im "
        "that adds one strided slice per kernel tap"))


def _conv_weight_grad_impl(x, g, stride, padding, dilation, groups, kernel_size):
    n, o = g.shape[:2]
    flat = _Flat.plan(x.shape[2:], kernel_size, stride, padding, dilation)
    if flat is not None and (flat.ext == flat.out or np.isfinite(np.add.reduce(x, axis=None))):
        # (a non-finite input on the widened grid times the zeros there would leak nan)
        col = flat.columns(x, padding, groups)                          # [N, g, CgK, P']
        g = flat.widen(g)
    else:
        col, _ = _columns(x, kernel_size, stride, padding, dilation, groups)   # [N, g, CgK, P]
    g4 = g.reshape(n, groups, o // groups, col.shape[-1]).transpose(0, 1, 3, 2)  # [N, g, P, Og]
    # columns @ gradient^T per sample, summed: [g, CgK, Og] (faster than g @ columns^T)
    if n == 1:
        gw = np.matmul(col[0], g4[0])
    else:  # the per-sample products summed over the batch: a gemv with ones (PERF-NOTES 5)
        per = np.matmul(col, g4)
        flat_per = per.reshape(n, math.prod(per.shape[1:]))
        gw = np.dot(ones_vector(n, per.dtype), flat_per).reshape(per.shape[1:]) \
            if per.dtype.char in "fd" else np.add.reduce(per, axis=0)
    return np.ascontiguousarray(gw.transpose(0, 2, 1)).reshape(
        (o, x.shape[1] // groups) + tuple(kernel_size))


def _conv_weight_grad_infer(x, g, stride, padding, dilation, groups, kernel_size):
    w_shape = (g.shape[1], x.shape[1] // groups) + tuple(kernel_size)
    _check_gradient(tuple(g.shape), tuple(x.shape), w_shape, stride, padding, dilation, groups)
    return w_shape, np.result_type(x.dtype, g.dtype)


def _conv_weight_grad_vjp(g, out, x, at, needs):
    # out = d<grad, conv(x, w)>/dw: linear in (x, grad); <u, out> = <grad, conv(x, u)>
    inp, grad = x
    conv_at = _conv_attrs(at)
    d_x = conv_input_grad(grad, g, size=tuple(inp.shape[2:]), **conv_at) if needs[0] else None
    d_grad = conv(inp, g, **conv_at) if needs[1] else None
    return d_x, d_grad


def _conv_weight_grad_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                            info: BatchInfo) -> Any:
    """Per-example weight gradients (the images' sum over N stays within each example): the
    batch folded into the channels of the batched operands, with ``groups * B`` groups when
    both are batched."""
    (x, g), (bx, bg), groups = xs, batched, attrs["groups"]
    size = info.size
    if bx and bg:
        x, g = _fold(x, 1, groups), _fold(g, 1, groups)
        return _unfold(x._apply(op, (x, g), _with_groups(attrs, groups * size)), 0, groups,
                       size)
    if bx:
        x = _fold(x, 1, groups)
        return _unfold(x._apply(op, (x, g), attrs), 1, 1, size)
    g = _fold(g, 1, groups)
    return _unfold(x._apply(op, (x, g), attrs), 0, groups, size)


CONV_WEIGHT_GRAD = register(OpDef(
    name="conv_weight_grad", kind="other", impl=_conv_weight_grad_impl,
    infer=_conv_weight_grad_infer, vjp=_conv_weight_grad_vjp, batch=_conv_weight_grad_batch,
    save_inputs=True,
    attrs=("stride", "padding", "dilation", "groups", "kernel_size"),
    doc="the weight gradient of conv from the input x and the output gradient g: the columns "
        "of x times g, one batched matmul"))


# --- max pooling -------------------------------------------------------------------------------

def _pool_geometry(size, kernel, stride, padding, dilation, ceil_mode):
    """Output shape and the ``(lo, hi)`` padding that holds every window."""
    out, pads = [], []
    for n, k, s, p, d in zip(size, kernel, stride, padding, dilation, strict=True):
        o = pool_out_size(n, k, s, p, d, ceil_mode)
        out.append(o)
        pads.append((p, max((o - 1) * s + d * (k - 1) + 1 - n - p, 0)))
    return tuple(out), tuple(pads)


def _check_pool(shape, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = kernel_size
    if len(shape) != len(kernel) + 2:
        raise ValueError(f"needs an input [N, C, *spatial] with {len(kernel)} spatial "
                         f"dimensions, got {list(shape)}")
    out, _ = _pool_geometry(shape[2:], kernel, stride, padding, dilation, ceil_mode)
    if min(out, default=1) < 1:
        raise ValueError(f"kernel {list(kernel)} (dilation {list(dilation)}) is larger than "
                         f"the padded input {list(shape[2:])} (padding {list(padding)})")
    return out


def _max_pool_impl(x, kernel_size, stride, padding, dilation, ceil_mode):
    out, pads = _pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    xp = _pad(x, pads, -np.inf)
    taps = _taps(kernel_size, stride, dilation, out)
    _, _, first = next(taps)
    y = xp[first].copy()
    for _, _, index in taps:
        np.maximum(y, xp[index], out=y)   # propagates nan, as PyTorch does
    return y


def _argmax_tap(x, xp, taps):
    """Per window, the tap holding the first maximum; a nan wins over numbers and a later nan
    over an earlier one, as PyTorch's ``val > max || isnan(val)``. Masked numpy calls (where=,
    np.where) are slow on random masks, so this is arithmetic on contiguous copies: taps come
    in increasing order, so the latest tap that took the lead is a running maximum."""
    best = xp[taps[0][2]].copy()
    which = np.zeros(best.shape, dtype=np.uint8 if len(taps) <= 256 else np.intp)
    nan = not np.isfinite(np.add.reduce(x, axis=None))  # a nan is possible: test each tap
    take = np.empty(best.shape, dtype=bool)
    lead = np.empty(best.shape, dtype=which.dtype)
    v = np.empty_like(best)
    for t, _, index in taps[1:]:
        np.copyto(v, xp[index])
        np.greater(v, best, out=take)
        if nan:
            take |= np.isnan(v)
        np.multiply(take, which.dtype.type(t), out=lead)
        np.maximum(which, lead, out=which)
        np.maximum(best, v, out=best)  # nan-propagating, as the rule above
    return which


def _select(mask, values, out, finite=None):
    """``values`` where ``mask``, 0 elsewhere, into ``out`` (a product when ``values`` are
    finite: masked selects are slow); ``finite``: whether they are, when the caller knows."""
    if finite is None:
        finite = np.isfinite(np.add.reduce(values, axis=None))
    if finite:
        return np.multiply(values, mask, out=out)
    return np.copyto(out, np.where(mask, values, np.zeros((), dtype=out.dtype)))


def _overlap(kernel_size, stride, dilation):
    """Whether windows share elements (else each input element is in one tap of one window)."""
    return any(s < d * (k - 1) + 1 for k, s, d in zip(kernel_size, stride, dilation, strict=True))


def _max_pool_grad_impl(x, g, kernel_size, stride, padding, dilation, ceil_mode):
    out, pads = _pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    xp = _pad(x, pads, -np.inf)
    taps = list(_taps(kernel_size, stride, dilation, out))
    which = _argmax_tap(x, xp, taps)
    g = np.ascontiguousarray(g)
    gxp = np.zeros(xp.shape, dtype=g.dtype)
    overlap = _overlap(kernel_size, stride, dilation)
    mask = np.empty(which.shape, dtype=bool)
    share = np.empty(g.shape, dtype=g.dtype)
    finite = np.isfinite(np.add.reduce(g, axis=None))  # once, not per tap
    for t, _, index in taps:
        np.equal(which, t, out=mask)
        _select(mask, g, share, finite)
        if overlap:
            gxp[index] += share
        else:
            gxp[index] = share
    return _crop(gxp, pads, x.shape[2:])


def _max_pool_select_impl(x, u, kernel_size, stride, padding, dilation, ceil_mode):
    out, pads = _pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    taps = list(_taps(kernel_size, stride, dilation, out))
    which = _argmax_tap(x, _pad(x, pads, -np.inf), taps)
    up = _pad(u, pads, 0)
    res = np.zeros(which.shape, dtype=u.dtype)
    v = np.empty_like(res)
    mask = np.empty(which.shape, dtype=bool)
    for t, _, index in taps:
        np.copyto(v, up[index])
        np.equal(which, t, out=mask)
        res += _select(mask, v, v)
    return res


_POOL_ATTRS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")


def _pool_at(at):
    return {k: at[k] for k in _POOL_ATTRS}


def _max_pool_infer(x, **at):
    return tuple(x.shape[:2]) + _check_pool(tuple(x.shape), **at), np.dtype(x.dtype)


def _max_pool_grad_infer(x, g, **at):
    out = _check_pool(tuple(x.shape), **at)
    if tuple(g.shape) != tuple(x.shape[:2]) + out:
        raise ValueError(f"gradient {list(g.shape)} does not match the pooled output "
                         f"{list(x.shape[:2]) + list(out)} of {list(x.shape)}")
    return tuple(x.shape), np.dtype(g.dtype)


def _max_pool_select_infer(x, u, **at):
    if tuple(u.shape) != tuple(x.shape):
        raise ValueError(f"values {list(u.shape)} must have the input's shape {list(x.shape)}")
    return tuple(x.shape[:2]) + _check_pool(tuple(x.shape), **at), np.dtype(u.dtype)


MAX_POOL = register(OpDef(
    name="max_pool", kind="other", impl=_max_pool_impl, infer=_max_pool_infer,
    vjp=lambda g, out, x, at, needs: (max_pool_grad(x[0], g, **_pool_at(at)),),
    save_inputs=True, batch=_images_batch, attrs=_POOL_ATTRS,
    doc="maximum over each window of x [N, C, *S] (padding counts as -inf); the gradient goes "
        "to each window's first maximum, as in PyTorch"))

MAX_POOL_GRAD = register(OpDef(
    name="max_pool_grad", kind="other", impl=_max_pool_grad_impl, infer=_max_pool_grad_infer,
    vjp=lambda g, out, x, at, needs: (
        None, max_pool_select(x[0], g, **_pool_at(at)) if needs[1] else None),
    save_inputs=True, batch=_images_batch, attrs=_POOL_ATTRS,
    doc="max_pool's input gradient: g added at each window's first maximum of x (zero "
        "gradient with respect to x)"))

MAX_POOL_SELECT = register(OpDef(
    name="max_pool_select", kind="other", impl=_max_pool_select_impl,
    infer=_max_pool_select_infer,
    vjp=lambda g, out, x, at, needs: (
        None, max_pool_grad(x[0], g, **_pool_at(at)) if needs[1] else None),
    save_inputs=True, batch=_images_batch, attrs=_POOL_ATTRS,
    doc="u read at each window's first maximum of x (max_pool_grad's gradient)"))


# --- average pooling ---------------------------------------------------------------------------

def pool_divisor(size, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override,
             out, dtype):
    """``1 / window size`` per output position, PyTorch's rule: windows are cut at the padded
    border; ``count_include_pad=False`` counts only the input's elements."""
    if divisor_override is not None:
        return np.asarray(1.0 / divisor_override, dtype=dtype)
    inv = np.ones((), dtype=np.float64)
    for axis, (n, k, s, p, o) in enumerate(zip(size, kernel, stride, padding, out, strict=True)):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        count = (np.minimum(end, n) - np.maximum(start, 0)) if not count_include_pad \
            else end - start
        shape = [1] * len(size)
        shape[axis] = o
        inv = inv * (1.0 / count).reshape(shape)  # separable: the window is a box
    return inv.astype(dtype)


_AVG_ATTRS = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
              "divisor_override")


def _avg_geometry(size, kernel_size, stride, padding, ceil_mode):
    return _pool_geometry(size, kernel_size, stride, padding, (1,) * len(kernel_size),
                          ceil_mode)


def _avg_pool_impl(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                   divisor_override):
    out, pads = _avg_geometry(x.shape[2:], kernel_size, stride, padding, ceil_mode)
    xp = _pad(x, pads, 0)
    ones = (1,) * len(kernel_size)
    taps = _taps(kernel_size, stride, ones, out)
    _, _, first = next(taps)
    total = xp[first].copy()
    for _, _, index in taps:
        total += xp[index]
    inv = pool_divisor(x.shape[2:], kernel_size, stride, padding, ceil_mode, count_include_pad,
                   divisor_override, out, x.dtype)
    return np.multiply(total, inv, out=total)


def _avg_pool_grad_impl(g, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override, size):
    out, pads = _avg_geometry(size, kernel_size, stride, padding, ceil_mode)
    inv = pool_divisor(size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                   divisor_override, out, g.dtype)
    share = np.multiply(g, inv)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(size, pads, strict=True))
    gxp = np.zeros(tuple(g.shape[:2]) + padded, dtype=share.dtype)
    for _, _, index in _taps(kernel_size, stride, (1,) * len(kernel_size), out):
        gxp[index] += share
    return _crop(gxp, pads, size)


def _avg_at(at):
    return {k: at[k] for k in _AVG_ATTRS}


def _avg_pool_infer(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                    divisor_override):
    ones = (1,) * len(kernel_size)
    out = _check_pool(tuple(x.shape), kernel_size, stride, padding, ones, ceil_mode)
    return tuple(x.shape[:2]) + out, np.dtype(x.dtype)


def _avg_pool_grad_infer(g, size, **at):
    shape = tuple(g.shape[:2]) + tuple(size)
    ones = (1,) * len(size)
    out = _check_pool(shape, at["kernel_size"], at["stride"], at["padding"], ones,
                      at["ceil_mode"])
    if tuple(g.shape[2:]) != out:
        raise ValueError(f"gradient {list(g.shape)} does not match the pooled output "
                         f"{list(shape[:2]) + list(out)} of {list(shape)}")
    return shape, np.dtype(g.dtype)


AVG_POOL = register(OpDef(
    name="avg_pool", kind="other", impl=_avg_pool_impl, infer=_avg_pool_infer,
    vjp=lambda g, out, x, at, needs: (avg_pool_grad(g, size=tuple(x[0].shape[2:]),
                                                    **_avg_at(at)),),
    batch=_images_batch, attrs=_AVG_ATTRS,
    doc="mean over each window of x [N, C, *S] (zero padding; count_include_pad and "
        "divisor_override as in PyTorch)"))

AVG_POOL_GRAD = register(OpDef(
    name="avg_pool_grad", kind="other", impl=_avg_pool_grad_impl, infer=_avg_pool_grad_infer,
    vjp=lambda g, out, x, at, needs: (avg_pool(g, **_avg_at(at)),),
    batch=_images_batch, attrs=_AVG_ATTRS + ("size",),
    doc="avg_pool's input gradient (its transpose) for an input of spatial size `size`"))


# --- functions on eager tensors and symbolic values ---------------------------------------------

def conv(x: Any, w: Any, *, stride: tuple, padding: tuple, dilation: tuple,
         groups: int) -> Any:
    """``conv`` of ``x`` and ``w`` (normalised attributes: tuples per spatial dimension)."""
    return x._apply(CONV, (x, w), {"stride": stride, "padding": padding, "dilation": dilation,
                                   "groups": groups})


def conv_input_grad(g: Any, w: Any, *, stride: tuple, padding: tuple, dilation: tuple,
                    groups: int, size: tuple) -> Any:
    return g._apply(CONV_INPUT_GRAD, (g, w), {
        "stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
        "size": size})


def conv_weight_grad(x: Any, g: Any, *, stride: tuple, padding: tuple, dilation: tuple,
                     groups: int, kernel_size: tuple) -> Any:
    return x._apply(CONV_WEIGHT_GRAD, (x, g), {
        "stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
        "kernel_size": kernel_size})


def max_pool(x: Any, *, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
             ceil_mode: bool) -> Any:
    return x._apply(MAX_POOL, (x,), {"kernel_size": kernel_size, "stride": stride,
                                     "padding": padding, "dilation": dilation,
                                     "ceil_mode": ceil_mode})


def max_pool_grad(x: Any, g: Any, **at: Any) -> Any:
    return x._apply(MAX_POOL_GRAD, (x, g), at)


def max_pool_select(x: Any, u: Any, **at: Any) -> Any:
    return x._apply(MAX_POOL_SELECT, (x, u), at)


def avg_pool(x: Any, *, kernel_size: tuple, stride: tuple, padding: tuple, ceil_mode: bool,
             count_include_pad: bool, divisor_override: int | None) -> Any:
    return x._apply(AVG_POOL, (x,), {
        "kernel_size": kernel_size, "stride": stride, "padding": padding,
        "ceil_mode": ceil_mode, "count_include_pad": count_include_pad,
        "divisor_override": divisor_override})


def avg_pool_grad(g: Any, *, size: tuple, **at: Any) -> Any:
    return g._apply(AVG_POOL_GRAD, (g,), {**at, "size": size})
