"""Layers: Linear (the seed's), activations and the seed's MLP."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ir.ops.rules import pick_alias
from ..runtime import Tensor
from ..runtime.factories import Seed, generator
from .module import Module

__all__ = ["ELU", "GELU", "MLP", "Identity", "LeakyReLU", "Linear", "LogSoftmax", "ReLU", "SiLU",
           "Sigmoid", "Softmax", "Softplus", "Tanh"]


class Linear(Module):
    """``y = x @ W + b`` with ``W`` of shape ``[in, out]`` as in the seed, Xavier-initialised the
    seed's way: uniform in ``[-s/2, s/2)`` with ``s = sqrt(2 / (in + out))``; bias zeros."""

    torch_transposed = ("weight",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: Seed = None, dtype: Any = np.float32) -> None:
        self.in_features, self.out_features = in_features, out_features
        scale = math.sqrt(2.0 / (in_features + out_features))
        w = generator(rng).random((in_features, out_features)) * scale - scale / 2
        self.weight = Tensor(w.astype(dtype)).requires_grad()
        self.bias = Tensor(np.zeros(out_features, dtype=dtype)).requires_grad() if bias else None

    def forward(self, x: Tensor) -> Tensor:
        lead = tuple(x.shape[:-1])
        if len(lead) > 1 and x.shape[-1] == self.in_features:
            # [..., in] as one [rows, in] GEMM: one 2-D weight gradient, not a batch summed
            y = x.reshape((math.prod(lead), self.in_features)).matmul(self.weight)
            y = y if self.bias is None else y.add(self.bias)
            return y.reshape((*lead, self.out_features))
        y = x.matmul(self.weight)
        return y if self.bias is None else y.add(self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """Returns its input (PyTorch's ``nn.Identity``; any constructor arguments are ignored)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def forward(self, x: Tensor) -> Tensor:
        return x


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere (``slope=`` is the seed's name)."""

    def __init__(self, negative_slope: float | None = None, *, slope: float | None = None) -> None:
        self.slope = pick_alias("LeakyReLU", "negative_slope", negative_slope, "slope", slope,
                                0.01)

    @property
    def negative_slope(self) -> float:
        return self.slope

    def forward(self, x: Tensor) -> Tensor:
        return x.leaky_relu(self.slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.slope}"


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class GELU(Module):
    """GELU. ``approximate="tanh"`` (the default here, the seed's and ``x.gelu()``'s) or
    ``"none"`` (the exact erf form, PyTorch's default: pass it to match ``torch.nn.GELU()``)."""

    def __init__(self, approximate: str = "tanh") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu(approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """``x * sigmoid(x)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.silu()


class ELU(Module):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return x.elu(self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta``, linear (``x``) where ``beta x > threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return x.softplus(self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """Softmax along ``dim`` (``axis=`` is the seed's name; default -1)."""

    def __init__(self, dim: int | None = None, *, axis: int | None = None) -> None:
        self.axis = pick_alias("Softmax", "dim", dim, "axis", axis, -1)

    @property
    def dim(self) -> int:
        return self.axis

    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(self.axis)

    def extra_repr(self) -> str:
        return f"dim={self.axis}"


class LogSoftmax(Module):
    """Log-softmax along ``dim`` (default -1)."""

    def __init__(self, dim: int | None = None, *, axis: int | None = None) -> None:
        self.axis = pick_alias("LogSoftmax", "dim", dim, "axis", axis, -1)

    @property
    def dim(self) -> int:
        return self.axis

    def forward(self, x: Tensor) -> Tensor:
        return x.log_softmax(self.axis)

    def extra_repr(self) -> str:
        return f"dim={self.axis}"


class MLP(Module):
    """The seed's MLP: three Linear layers with ReLU between them."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, rng: Seed = None,
                 dtype: Any = np.float32) -> None:
        gen = generator(rng)
        self.fc1 = Linear(input_dim, hidden_dim, rng=gen, dtype=dtype)
        self.fc2 = Linear(hidden_dim, hidden_dim, rng=gen, dtype=dtype)
        self.fc3 = Linear(hidden_dim, output_dim, rng=gen, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        h1 = self.fc1(x).relu()
        h2 = self.fc2(h1).relu()
        return self.fc3(h2)

