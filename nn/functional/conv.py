"""Convolution and pooling over NCHW images: conv1d, conv2d, max_pool1d/2d, avg_pool1d/2d and
adaptive_avg_pool1d/2d, with PyTorch's arguments, defaults and layouts.

Inputs are ``[N, C, L]`` (1-d) or ``[N, C, H, W]`` (2-d), or the same without the batch
dimension; weights ``[out_channels, in_channels / groups, *kernel]``. The ops are defined in
``aprender/ir/ops/conv.py``; the functions here check the arguments (eagerly and in a compiled
trace alike, with errors naming the function, the shapes and the dtypes) and normalise them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DTypeError, with_location
from ...ir.ops import conv as _ops
from ...ir.ops.rules import shape_error
from ...runtime import Tensor

__all__ = ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "conv1d",
           "conv2d", "max_pool1d", "max_pool2d"]


def _tuple(op: str, name: str, value: Any, nd: int, low: int, *operands: Any) -> tuple:
    """``value`` (an int or ``nd`` ints) as a tuple of ``nd`` ints, each at least ``low``."""
    items = (value,) * nd if isinstance(value, int | np.integer) else tuple(value)
    if len(items) != nd or not all(isinstance(v, int | np.integer) for v in items):
        raise shape_error(op, f"{name} must be an int or {nd} ints, got {value!r}", *operands)
    if any(v < low for v in items):
        raise shape_error(op, f"{name} must be at least {low}, got {value!r}", *operands)
    return tuple(int(v) for v in items)


def _as_tensor(value: Any, like: Tensor) -> Tensor:
    return value if isinstance(value, Tensor) else like._coerce(np.asarray(value))


def _check_float(op: str, *operands: Any) -> None:
    for v in operands:
        if np.dtype(v.dtype).kind != "f":
            kinds = ", ".join(str(o.dtype) for o in operands)
            raise DTypeError(with_location(f"{op}: needs floating-point operands, got {kinds}"))


def _batched(op: str, x: Any, nd: int) -> tuple[Tensor, bool]:
    """``x`` with a batch dimension (unbatched ``[C, *S]`` inputs get one, as in PyTorch)."""
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x))
    if x.ndim == nd + 1:
        return x.reshape((1,) + tuple(x.shape)), True
    if x.ndim != nd + 2:
        shape = "[N, C, L] or [C, L]" if nd == 1 else "[N, C, H, W] or [C, H, W]"
        raise shape_error(op, f"needs an input {shape}, got {x.ndim} dimensions", x)
    return x, False


def _unbatched(y: Tensor, squeeze: bool) -> Tensor:
    return y.reshape(tuple(y.shape[1:])) if squeeze else y


# --- convolution -------------------------------------------------------------------------------

def _conv(op: str, nd: int, input: Any, weight: Any, bias: Any, stride: Any, padding: Any,
          dilation: Any, groups: int) -> Tensor:
    x, squeeze = _batched(op, input, nd)
    w = _as_tensor(weight, x)
    b = None if bias is None else _as_tensor(bias, x)
    operands = (x, w) if b is None else (x, w, b)
    _check_float(op, *operands)
    if w.ndim != nd + 2:
        raise shape_error(op, f"needs a weight [out_channels, in_channels/groups, *kernel] with "
                              f"{nd + 2} dimensions", *operands)
    stride = _tuple(op, "stride", stride, nd, 1, *operands)
    dilation = _tuple(op, "dilation", dilation, nd, 1, *operands)
    if not isinstance(groups, int | np.integer) or groups < 1:
        raise shape_error(op, f"groups must be a positive int, got {groups!r}", *operands)
    groups = int(groups)
    kernel = tuple(w.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0),) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise shape_error(op, f"padding='same' needs stride 1, got stride {stride}",
                                  *operands)
            total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
            pads = tuple((t // 2, t - t // 2) for t in total)
        else:
            raise shape_error(op, f"padding must be an int, {nd} ints, 'valid' or 'same', got "
                                  f"{padding!r}", *operands)
    else:
        pads = tuple((p, p) for p in _tuple(op, "padding", padding, nd, 0, *operands))
    c, o = x.shape[1], w.shape[0]
    if c % groups or o % groups:
        raise shape_error(op, f"groups={groups} must divide the input channels ({c}) and the "
                              f"output channels ({o})", *operands)
    if w.shape[1] * groups != c:
        raise shape_error(op, f"weight {list(w.shape)} with groups={groups} expects "
                              f"{w.shape[1] * groups} input channels, got {c} channels",
                          *operands)
    if b is not None and tuple(b.shape) != (o,):
        raise shape_error(op, f"bias must have shape [{o}] (one per output channel), got "
                              f"{list(b.shape)}", *operands)
    for n, k, (lo, hi), d in zip(x.shape[2:], kernel, pads, dilation, strict=True):
        if n + lo + hi < d * (k - 1) + 1:
            raise shape_error(op, f"kernel size {list(kernel)} (dilation {list(dilation)}) is "
                                  f"larger than the padded input {list(x.shape[2:])} (padding "
                                  f"{[p[0] if p[0] == p[1] else list(p) for p in pads]})",
                              *operands)
    y = _ops.conv(x, w, stride=stride, padding=pads, dilation=dilation, groups=groups)
    if b is not None:
        y = y.add(b.reshape((o,) + (1,) * nd))
    return _unbatched(y, squeeze)


def conv1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """1-d convolution (cross-correlation) of ``input`` ``[N, C, L]`` with ``weight``
    ``[O, C/groups, K]``, plus ``bias`` ``[O]``; ``padding`` is an int, ``"valid"`` or
    ``"same"`` (stride 1); as ``torch.nn.functional.conv1d``."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-d convolution (cross-correlation) of ``input`` ``[N, C, H, W]`` with ``weight``
    ``[O, C/groups, kh, kw]``, plus ``bias`` ``[O]``; ``stride``, ``padding`` and ``dilation``
    are ints or pairs, ``padding`` may be ``"valid"`` or ``"same"`` (stride 1); ``groups``
    splits the channels (``groups == C``: depthwise); as ``torch.nn.functional.conv2d``."""
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


# --- pooling -----------------------------------------------------------------------------------

def _pool_args(op: str, nd: int, x: Tensor, kernel_size: Any, stride: Any, padding: Any,
               dilation: Any) -> tuple:
    kernel = _tuple(op, "kernel_size", kernel_size, nd, 1, x)
    stride = kernel if stride is None or (not isinstance(stride, int | np.integer)
                                          and len(stride) == 0) \
        else _tuple(op, "stride", stride, nd, 1, x)
    padding = _tuple(op, "padding", padding, nd, 0, x)
    dilation = _tuple(op, "dilation", dilation, nd, 1, x)
    if any(p > k // 2 for p, k in zip(padding, kernel, strict=True)):
        raise shape_error(op, f"padding {list(padding)} must be at most half the kernel size "
                              f"{list(kernel)}", x)
    for n, k, p, d in zip(x.shape[2:], kernel, padding, dilation, strict=True):
        if n + 2 * p < d * (k - 1) + 1:
            raise shape_error(op, f"kernel size {list(kernel)} (dilation {list(dilation)}) is "
                                  f"larger than the padded input {list(x.shape[2:])} (padding "
                                  f"{list(padding)})", x)
    return kernel, stride, padding, dilation


def _max_pool(op: str, nd: int, input: Any, kernel_size: Any, stride: Any, padding: Any,
              dilation: Any, ceil_mode: bool, return_indices: bool) -> Tensor:
    x, squeeze = _batched(op, input, nd)
    _check_float(op, x)
    if return_indices:
        raise shape_error(op, "return_indices=True is not supported", x)
    kernel, stride, padding, dilation = _pool_args(op, nd, x, kernel_size, stride, padding,
                                                   dilation)
    y = _ops.max_pool(x, kernel_size=kernel, stride=stride, padding=padding,
                      dilation=dilation, ceil_mode=bool(ceil_mode))
    return _unbatched(y, squeeze)


def max_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """Maximum over windows of ``input`` ``[N, C, L]`` (``stride`` defaults to the kernel
    size; padding counts as -inf); the gradient goes to each window's first maximum."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """Maximum over windows of ``input`` ``[N, C, H, W]`` (``stride`` defaults to the kernel
    size; padding counts as -inf; ``ceil_mode`` keeps a last partial window); the gradient goes
    to each window's first maximum, as in PyTorch."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def _avg_pool(op: str, nd: int, input: Any, kernel_size: Any, stride: Any, padding: Any,
              ceil_mode: bool, count_include_pad: bool, divisor_override: Any) -> Tensor:
    x, squeeze = _batched(op, input, nd)
    _check_float(op, x)
    kernel, stride, padding, _ = _pool_args(op, nd, x, kernel_size, stride, padding, 1)
    if divisor_override is not None:
        if not isinstance(divisor_override, int | np.integer) or divisor_override == 0:
            raise shape_error(op, f"divisor_override must be a non-zero int, got "
                                  f"{divisor_override!r}", x)
        divisor_override = int(divisor_override)
    y = _ops.avg_pool(x, kernel_size=kernel, stride=stride, padding=padding,
                      ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                      divisor_override=divisor_override)
    return _unbatched(y, squeeze)


def avg_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Mean over windows of ``input`` ``[N, C, L]`` (zero padding, counted in the divisor
    unless ``count_include_pad=False``)."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """Mean over windows of ``input`` ``[N, C, H, W]`` (zero padding, counted in the divisor
    unless ``count_include_pad=False``; ``divisor_override`` replaces the divisor)."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def _adaptive_avg_pool(op: str, nd: int, input: Any, output_size: Any) -> Tensor:
    x, squeeze = _batched(op, input, nd)
    _check_float(op, x)
    items = (output_size,) * nd if isinstance(output_size, int | np.integer | None) \
        else tuple(output_size)
    if len(items) != nd:
        raise shape_error(op, f"output_size must be an int or {nd} ints, got {output_size!r}",
                          x)
    size = tuple(x.shape[2:])
    out = tuple(n if o is None else int(o) for o, n in zip(items, size, strict=True))
    if any(o < 1 for o in out):
        raise shape_error(op, f"output_size must be positive, got {output_size!r}", x)
    if all(o == 1 for o in out):  # global average pooling
        y = x.mean(tuple(range(2, 2 + nd)), keepdims=True)
    elif any(n % o for n, o in zip(size, out, strict=True)):
        raise shape_error(op, f"output size {list(out)} must divide the input size "
                              f"{list(size)} (other sizes are not supported)", x)
    else:
        kernel = tuple(n // o for n, o in zip(size, out, strict=True))
        y = _ops.avg_pool(x, kernel_size=kernel, stride=kernel, padding=(0,) * nd,
                          ceil_mode=False, count_include_pad=True, divisor_override=None)
    return _unbatched(y, squeeze)


def adaptive_avg_pool1d(input: Any, output_size: Any) -> Tensor:
    """Mean over ``output_size`` equal windows of ``[N, C, L]`` (1: global average pooling;
    other sizes must divide the length)."""
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:
    """Mean over ``output_size`` equal windows of ``[N, C, H, W]`` (1 or (1, 1): global
    average pooling; other sizes must divide the input's; None keeps that dimension)."""
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, input, output_size)
