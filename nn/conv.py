"""Convolution, pooling and Flatten layers, with PyTorch's arguments, parameter names and
initialisation (so ``state_dict`` keys and shapes match PyTorch's)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ir.ops.rules import shape_error
from ..runtime import Tensor
from ..runtime.factories import Seed, generator
from . import functional as F
from .module import Module

__all__ = ["AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "Conv1d", "Conv2d", "Flatten",
           "MaxPool1d", "MaxPool2d"]


def _ntuple(value: Any, nd: int) -> tuple:
    return (value,) * nd if isinstance(value, int | np.integer) else tuple(value)


class _ConvNd(Module):
    _nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", rng: Seed = None, dtype: Any = np.float32) -> None:
        name = type(self).__name__
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported, got "
                             f"{padding_mode!r}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels ({in_channels}) "
                             f"and out_channels ({out_channels})")
        if isinstance(padding, str) and padding not in ("valid", "same"):
            raise ValueError(f"{name}: padding must be an int, a tuple, 'valid' or 'same', got "
                             f"{padding!r}")
        nd = self._nd
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _ntuple(kernel_size, nd)
        self.stride = _ntuple(stride, nd)
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, nd)
        self.dilation = _ntuple(dilation, nd)
        self.groups = groups
        self.padding_mode = padding_mode
        if isinstance(padding, str) and padding == "same" and any(s != 1 for s in self.stride):
            raise ValueError(f"{name}: padding='same' needs stride 1, got {self.stride}")
        # PyTorch's default: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        # and the bias from the same bound
        shape = (out_channels, in_channels // groups) + self.kernel_size
        bound = 1.0 / math.sqrt(math.prod(shape[1:])) if math.prod(shape[1:]) else 0.0
        gen = generator(rng)
        w = gen.uniform(-bound, bound, shape)
        self.weight = Tensor(w.astype(dtype)).requires_grad()
        self.bias = Tensor(gen.uniform(-bound, bound, out_channels).astype(dtype)) \
            .requires_grad() if bias else None

    def forward(self, x: Tensor) -> Tensor:
        fn = F.conv1d if self._nd == 1 else F.conv2d
        return fn(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                  self.groups)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,) * self._nd:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv1d(_ConvNd):
    """1-d convolution layer over ``[N, C, L]``: weight ``[out, in/groups, k]``, bias ``[out]``,
    initialised as PyTorch does (uniform in ``±1/sqrt(in/groups * k)``)."""

    _nd = 1


class Conv2d(_ConvNd):
    """2-d convolution layer over ``[N, C, H, W]``: weight ``[out, in/groups, kh, kw]``, bias
    ``[out]``, initialised as PyTorch does (uniform in ``±1/sqrt(in/groups * kh * kw)``)."""

    _nd = 2


class _MaxPoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        if return_indices:
            raise ValueError(f"{type(self).__name__}: return_indices=True is not supported")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        fn = F.max_pool1d if self._nd == 1 else F.max_pool2d
        return fn(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return (f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Maximum over windows of ``[N, C, L]`` (``F.max_pool1d``)."""

    _nd = 1


class MaxPool2d(_MaxPoolNd):
    """Maximum over windows of ``[N, C, H, W]`` (``F.max_pool2d``)."""

    _nd = 2


class AvgPool1d(Module):
    """Mean over windows of ``[N, C, L]`` (``F.avg_pool1d``)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Mean over windows of ``[N, C, H, W]`` (``F.avg_pool2d``)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Mean over ``output_size`` equal windows of ``[N, C, H, W]`` (1: global average
    pooling; ``F.adaptive_avg_pool2d``)."""

    def __init__(self, output_size: Any) -> None:
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Flatten(Module):
    """Dimensions ``start_dim..end_dim`` merged into one (PyTorch's defaults keep the batch
    dimension: ``[N, C, H, W] -> [N, C*H*W]``)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        nd = max(x.ndim, 1)
        start, end = self.start_dim, self.end_dim
        if not (-nd <= start < nd and -nd <= end < nd):
            raise shape_error("Flatten", f"start_dim={start} or end_dim={end} is out of range "
                                         f"for {x.ndim} dimensions", x)
        start, end = start % nd, end % nd
        if start > end:
            raise shape_error("Flatten", f"start_dim={self.start_dim} comes after "
                                         f"end_dim={self.end_dim}", x)
        if x.ndim == 0:
            return x.reshape((1,))
        shape = tuple(x.shape)
        return x.reshape(shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
