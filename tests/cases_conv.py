"""Op cases of convolution and pooling (``aprender.nn.functional`` conv1d/conv2d, max/avg pooling).

The references below are written independently of the kernels: a loop over output positions
that reads each window of the padded input directly (no im2col, no col2im).
"""

from __future__ import annotations

import itertools

import numpy as np
from opcases import Case, distinct

import aprender.nn.functional as F


def _tup(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


def ref_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Convolution (cross-correlation) by a loop over output positions; PyTorch semantics."""
    unbatched = x.ndim == w.ndim - 1
    if unbatched:
        x = x[None]
    nd = x.ndim - 2
    stride, dilation = _tup(stride, nd), _tup(dilation, nd)
    kernel = w.shape[2:]
    if padding == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        pads = [(t // 2, t - t // 2) for t in total]
    elif padding == "valid":
        pads = [(0, 0)] * nd
    else:
        pads = [(p, p) for p in _tup(padding, nd)]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    out = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
           for i in range(nd)]
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups
    y = np.zeros((n, o, *out), dtype=np.result_type(x, w))
    for pos in itertools.product(*(range(k) for k in out)):
        window = tuple(slice(p * s, p * s + d * (k - 1) + 1, d)
                       for p, s, d, k in zip(pos, stride, dilation, kernel, strict=True))
        patch = xp[(slice(None), slice(None)) + window]          # [N, C, *K]
        for gi in range(groups):
            part = patch[:, gi * cg:(gi + 1) * cg]
            wg = w[gi * og:(gi + 1) * og]
            axes = list(range(1, nd + 2))
            y[(slice(None), slice(gi * og, (gi + 1) * og)) + pos] = np.tensordot(
                part, wg, axes=(axes, axes))
    if b is not None:
        y = y + b.reshape((o,) + (1,) * nd)
    return y[0] if unbatched else y


def _pool_out(n, k, s, p, d, ceil_mode):
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def ref_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    nd = x.ndim - 2
    k = _tup(kernel_size, nd)
    s = k if stride is None else _tup(stride, nd)
    p, d = _tup(padding, nd), _tup(dilation, nd)
    out = [_pool_out(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(nd)]
    y = np.empty(x.shape[:2] + tuple(out), dtype=x.dtype)
    for pos in itertools.product(*(range(m) for m in out)):
        best = np.full(x.shape[:2], -np.inf, dtype=x.dtype)
        for offs in itertools.product(*(range(m) for m in k)):
            idx = [q * s[i] - p[i] + offs[i] * d[i] for i, q in enumerate(pos)]
            if all(0 <= j < x.shape[2 + i] for i, j in enumerate(idx)):
                best = np.maximum(best, x[(slice(None), slice(None)) + tuple(idx)])
        y[(slice(None), slice(None)) + pos] = best
    return y


def ref_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
    nd = x.ndim - 2
    k = _tup(kernel_size, nd)
    s = k if stride is None else _tup(stride, nd)
    p = _tup(padding, nd)
    size = x.shape[2:]
    out = [_pool_out(size[i], k[i], s[i], p[i], 1, ceil_mode) for i in range(nd)]
    y = np.empty(x.shape[:2] + tuple(out), dtype=x.dtype)
    for pos in itertools.product(*(range(m) for m in out)):
        start = [q * s[i] - p[i] for i, q in enumerate(pos)]
        end = [min(start[i] + k[i], size[i] + p[i]) for i in range(nd)]   # cut at the padding
        lo = [max(a, 0) for a in start]
        hi = [min(e, size[i]) for i, e in enumerate(end)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        window = x[(slice(None), slice(None)) + box]
        total = window.sum(axis=tuple(range(2, 2 + nd)))
        if divisor_override is not None:
            count = divisor_override
        elif count_include_pad:
            count = int(np.prod([e - a for a, e in zip(start, end, strict=True)]))
        else:
            count = int(np.prod([b - a for a, b in zip(lo, hi, strict=True)]))
        y[(slice(None), slice(None)) + pos] = total / count
    return y


def ref_adaptive_avg(x, out):
    nd = x.ndim - 2
    out = _tup(out, nd)
    y = np.empty(x.shape[:2] + out, dtype=x.dtype)
    for pos in itertools.product(*(range(m) for m in out)):
        window = tuple(slice(q * x.shape[2 + i] // out[i],
                             -(-(q + 1) * x.shape[2 + i] // out[i])) for i, q in enumerate(pos))
        y[(slice(None), slice(None)) + pos] = x[(slice(None), slice(None)) + window].mean(
            axis=tuple(range(2, 2 + nd)))
    return y


def _conv2d(**kw):
    return (lambda x, w, b: F.conv2d(x, w, b, **kw),
            lambda x, w, b: ref_conv(x, w, b, **kw))


def _conv2d_nobias(**kw):
    return (lambda x, w: F.conv2d(x, w, **kw), lambda x, w: ref_conv(x, w, **kw))


def _pool(fn, ref, **kw):
    return (lambda x: fn(x, **kw), lambda x: ref(x, **kw))


CASES = [
    Case("conv2d", *_conv2d(), ((2, 2, 5, 5), (3, 2, 3, 3), (3,))),
    Case("conv2d_stride_pad", *_conv2d(stride=2, padding=1), ((2, 2, 6, 5), (3, 2, 3, 3), (3,))),
    Case("conv2d_dilated", *_conv2d(stride=(1, 2), padding=(2, 1), dilation=(2, 1)),
         ((1, 2, 6, 7), (3, 2, 2, 3), (3,))),
    Case("conv2d_same_even_kernel", *_conv2d_nobias(padding="same", dilation=(1, 2)),
         ((2, 2, 5, 6), (3, 2, 2, 3))),
    Case("conv2d_valid_wide", *_conv2d_nobias(padding="valid"), ((1, 2, 4, 9), (2, 2, 3, 4))),
    Case("conv2d_grouped", *_conv2d(stride=2, padding=1, groups=2),
         ((2, 4, 5, 5), (4, 2, 3, 3), (4,))),
    Case("conv2d_depthwise", *_conv2d_nobias(padding=1, groups=3), ((1, 3, 5, 4), (6, 1, 3, 3))),
    Case("conv2d_unbatched", *_conv2d_nobias(padding=1), ((2, 4, 4), (3, 2, 3, 3))),
    Case("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=2, dilation=2),
         lambda x, w, b: ref_conv(x, w, b, stride=2, padding=2, dilation=2),
         ((2, 3, 9), (4, 3, 3), (4,))),
    Case("conv1d_same_grouped", lambda x, w: F.conv1d(x, w, padding="same", groups=2),
         lambda x, w: ref_conv(x, w, padding="same", groups=2), ((2, 4, 7), (2, 2, 4))),
    Case("max_pool2d", *_pool(F.max_pool2d, ref_max_pool, kernel_size=2), ((2, 2, 6, 6),),
         distinct),
    Case("max_pool2d_overlap_pad_ceil",
         *_pool(F.max_pool2d, ref_max_pool, kernel_size=3, stride=2, padding=1, ceil_mode=True),
         ((1, 2, 7, 6),), distinct),
    Case("max_pool2d_dilated",
         *_pool(F.max_pool2d, ref_max_pool, kernel_size=(2, 3), stride=(1, 2), padding=(1, 1),
                dilation=(2, 1)), ((1, 2, 6, 7),), distinct),
    Case("max_pool1d", *_pool(F.max_pool1d, ref_max_pool, kernel_size=3, stride=2, padding=1),
         ((2, 2, 9),), distinct),
    Case("avg_pool2d", *_pool(F.avg_pool2d, ref_avg_pool, kernel_size=2), ((2, 2, 6, 6),)),
    Case("avg_pool2d_pad_ceil_exclude",
         *_pool(F.avg_pool2d, ref_avg_pool, kernel_size=3, stride=2, padding=1, ceil_mode=True,
                count_include_pad=False), ((1, 2, 6, 7),)),
    Case("avg_pool2d_pad_ceil_include",
         *_pool(F.avg_pool2d, ref_avg_pool, kernel_size=(3, 2), stride=2, padding=1,
                ceil_mode=True), ((1, 2, 6, 7),)),
    Case("avg_pool2d_divisor", *_pool(F.avg_pool2d, ref_avg_pool, kernel_size=2, stride=1,
                                      divisor_override=3), ((1, 2, 4, 5),)),
    Case("avg_pool1d", *_pool(F.avg_pool1d, ref_avg_pool, kernel_size=3, stride=2, padding=1,
                              count_include_pad=False), ((2, 2, 8),)),
    Case("adaptive_avg_pool2d_global", lambda x: F.adaptive_avg_pool2d(x, 1),
         lambda x: ref_adaptive_avg(x, 1), ((2, 3, 4, 5),)),
    Case("adaptive_avg_pool2d_divides", lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
         lambda x: ref_adaptive_avg(x, (2, 3)), ((2, 2, 4, 6),)),
]

#: ops tested only through others (with where)
INDIRECT = {
    # max_pool's second-order op (the gradient of max_pool_grad with respect to its output
    # gradient): tests/test_conv.py::test_max_pool_double_backward_through_the_seed
    "max_pool_select",
}
