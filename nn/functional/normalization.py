"""Normalisation: batch_norm and layer_norm, as PyTorch, built from ops (so gradients of any
order and compiled code come from the ops' own rules).

``batch_norm`` in training normalises with the batch statistics over every dimension but the
channel (dim 1), with the biased variance, and updates ``running_mean``/``running_var`` in
place (under ``no_grad``) with ``momentum`` and the unbiased variance; inside ``ap.compile``
those updates are graph updates of the buffers. In evaluation it uses the running statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import DTypeError, ShapeError, describe, with_location
from ...runtime import Tensor, no_grad

__all__ = ["batch_norm", "layer_norm"]


def _input(fn: str, value: Any) -> Tensor:
    x = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
    if x.dtype.kind != "f":
        raise DTypeError(with_location(f"{fn}: input must be a float tensor, got {describe(x)}"))
    return x


def _per(fn: str, name: str, value: Any, shape: tuple[int, ...], x: Tensor,
         what: str) -> Tensor | None:
    """An optional per-channel (per-feature) operand of ``shape``: tensors as they are, arrays
    in the input's dtype."""
    if value is None:
        return None
    t = value if isinstance(value, Tensor) else Tensor(np.asarray(value, dtype=x.dtype))
    if t.dtype.kind != "f":
        raise DTypeError(with_location(f"{fn}: {name} must be a float tensor, got {describe(t)}"))
    if tuple(t.shape) != shape:
        raise ShapeError(with_location(f"{fn}: {name} {describe(t)} must have shape "
                                       f"{list(shape)} ({what} of input {describe(x)})"))
    return t


def batch_norm(input: Tensor, running_mean: Tensor | None,  # noqa: A002 - torch's name
               running_var: Tensor | None, weight: Any = None, bias: Any = None,
               training: bool = False, momentum: float | Tensor = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Normalise ``input`` ``[N, C, ...]`` per channel, then scale by ``weight`` and shift by
    ``bias`` (both ``[C]``, optional), as PyTorch.

    ``training=True``: batch mean and biased variance over every dimension but dim 1; the
    running statistics (when given) become ``(1 - momentum) * running + momentum * batch``
    with the unbiased batch variance, updated in place. ``training=False``: the running
    statistics normalise. ``momentum`` may be a 0-d tensor (``BatchNorm(momentum=None)``'s
    cumulative average, computed from a counter inside a compiled step).
    """
    x = _input("batch_norm", input)
    if x.ndim < 2:
        raise ShapeError(with_location(f"batch_norm: input must be [N, C, ...] (at least 2-D), "
                                       f"got {describe(x)}"))
    c = x.shape[1]
    channels = "one per channel, dim 1"
    stats = []
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and training and not isinstance(value, Tensor):
            raise DTypeError(with_location(f"batch_norm: {name} must be a Tensor in training "
                                           f"(it is updated in place), got "
                                           f"{type(value).__name__}"))
        stats.append(_per("batch_norm", name, value, (c,), x, channels))
    mean_buf, var_buf = stats
    w = _per("batch_norm", "weight", weight, (c,), x, channels)
    b = _per("batch_norm", "bias", bias, (c,), x, channels)
    shape = (1, c) + (1,) * (x.ndim - 2)  # a [C] operand broadcast along dim 1
    if training:
        axes = (0,) + tuple(range(2, x.ndim))
        n = x.size // c if c else 0
        if n <= 1:
            raise ShapeError(with_location(f"batch_norm: expected more than 1 value per channel "
                                           f"when training, got input {describe(x)}"))
        mean = x.mean(axes, keepdims=True)
        centered = x.sub(mean)
        var = centered.square().mean(axes, keepdims=True)
        if mean_buf is not None or var_buf is not None:
            with no_grad():
                keep = 1.0 - momentum
                if mean_buf is not None:
                    mean_buf.assign(mean_buf.mul(keep).add(mean.reshape(c).mul(momentum)))
                if var_buf is not None:
                    unbiased = var.reshape(c).mul(n / (n - 1))
                    var_buf.assign(var_buf.mul(keep).add(unbiased.mul(momentum)))
        scale = var.add(eps).rsqrt()
        if w is not None:
            scale = scale.mul(w.reshape(shape))
        out = centered.mul(scale)
        return out if b is None else out.add(b.reshape(shape))
    if mean_buf is None or var_buf is None:
        raise ValueError(with_location("batch_norm: running_mean and running_var must be given "
                                       "in evaluation mode (training=False)"))
    scale = var_buf.add(eps).rsqrt()
    if w is not None:
        scale = scale.mul(w)
    shift = mean_buf.mul(scale).neg() if b is None else b.sub(mean_buf.mul(scale))
    return x.mul(scale.reshape(shape)).add(shift.reshape(shape))


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int],  # noqa: A002
               weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dimensions (mean and biased variance),
    then scale by ``weight`` and shift by ``bias`` (both of ``normalized_shape``), as
    PyTorch."""
    x = _input("layer_norm", input)
    shape = (int(normalized_shape),) if isinstance(normalized_shape, int | np.integer) else \
        tuple(int(d) for d in normalized_shape)
    k = len(shape)
    if k == 0 or k > x.ndim or tuple(x.shape[x.ndim - k:]) != shape:
        raise ShapeError(with_location(
            f"layer_norm: normalized_shape {list(shape)} must be the trailing dimensions of the "
            f"input (expected input [*, {', '.join(map(str, shape))}]), got {describe(x)}"))
    w = _per("layer_norm", "weight", weight, shape, x, "normalized_shape")
    b = _per("layer_norm", "bias", bias, shape, x, "normalized_shape")
    axes = tuple(range(x.ndim - k, x.ndim))
    centered = x.sub(x.mean(axes, keepdims=True))
    var = centered.square().mean(axes, keepdims=True)
    out = centered.mul(var.add(eps).rsqrt())
    if w is not None:
        out = out.mul(w)
    return out if b is None else out.add(b)
