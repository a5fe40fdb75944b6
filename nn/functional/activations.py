"""Activation functions under PyTorch's names (relu, gelu, silu, elu, softplus, softmax, ...).

Each is one registered op (eager, gradients of every order, compiled), called through the
tensor's method; the arguments and defaults are PyTorch's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DTypeError, with_location
from ...ir.ops.rules import OpBase, pick_alias
from ...runtime import Tensor

__all__ = ["elu", "gelu", "leaky_relu", "log_softmax", "relu", "sigmoid", "silu", "softmax",
           "softplus", "tanh"]


def _t(fn: str, value: Any) -> Any:
    """``value`` as a tensor: tensors (and traced values) as they are, numpy arrays wrapped
    (keeping their dtype); anything else is refused."""
    if isinstance(value, OpBase):
        return value
    if isinstance(value, np.ndarray | np.generic):
        return Tensor(value)
    raise DTypeError(with_location(f"{fn}: input must be a Tensor or a numpy array, got "
                                   f"{type(value).__name__}"))


def relu(input: Any) -> Any:  # noqa: A002 - PyTorch's argument name
    """``max(input, 0)``; gradient 0 at 0."""
    return _t("relu", input).relu()


def leaky_relu(input: Any, negative_slope: float = 0.01) -> Any:  # noqa: A002
    """``input`` where positive, ``negative_slope * input`` elsewhere (the slope at 0)."""
    return _t("leaky_relu", input).leaky_relu(negative_slope)


def gelu(input: Any, approximate: str = "none") -> Any:  # noqa: A002
    """GELU: ``input * Phi(input)`` with the exact normal CDF (``approximate="none"``,
    PyTorch's default) or its tanh approximation (``approximate="tanh"``)."""
    return _t("gelu", input).gelu(approximate=approximate)


def silu(input: Any) -> Any:  # noqa: A002
    """``input * sigmoid(input)`` (SiLU, swish)."""
    return _t("silu", input).silu()


def elu(input: Any, alpha: float = 1.0) -> Any:  # noqa: A002
    """``input`` where positive, ``alpha * (exp(input) - 1)`` elsewhere."""
    return _t("elu", input).elu(alpha)


def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:  # noqa: A002
    """``log(1 + exp(beta * input)) / beta``, and ``input`` itself where
    ``beta * input > threshold`` (PyTorch's linear regime)."""
    return _t("softplus", input).softplus(beta, threshold)


def _cast(input: Any, dtype: Any) -> Any:  # noqa: A002
    return input if dtype is None else input.astype(dtype)


def softmax(input: Any, dim: int | None = None, dtype: Any = None, *,  # noqa: A002
            axis: int | None = None) -> Any:
    """Softmax along ``dim`` (default -1), numerically stable; ``dtype`` casts the input
    first, as in PyTorch."""
    dim = pick_alias("softmax", "dim", dim, "axis", axis, -1)
    return _cast(_t("softmax", input), dtype).softmax(dim)


def log_softmax(input: Any, dim: int | None = None, dtype: Any = None, *,  # noqa: A002
                axis: int | None = None) -> Any:
    """Log-softmax along ``dim`` (default -1), numerically stable."""
    dim = pick_alias("log_softmax", "dim", dim, "axis", axis, -1)
    return _cast(_t("log_softmax", input), dtype).log_softmax(dim)


def sigmoid(input: Any) -> Any:  # noqa: A002
    """``1 / (1 + exp(-input))``, computed stably."""
    return _t("sigmoid", input).sigmoid()


def tanh(input: Any) -> Any:  # noqa: A002
    """Hyperbolic tangent."""
    return _t("tanh", input).tanh()
