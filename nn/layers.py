"""Layers: Linear (the seed's), activations and the seed's MLP."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..runtime import Tensor
from ..runtime.factories import Seed, generator
from .module import Module

__all__ = ["GELU", "MLP", "LeakyReLU", "Linear", "ReLU", "Sigmoid", "Softmax", "Tanh"]


class Linear(Module):
    """``y = x @ W + b`` with ``W`` of shape ``[in, out]`` as in the seed, Xavier-initialised the
    seed's way: uniform in ``[-s/2, s/2)`` with ``s = sqrt(2 / (in + out))``; bias zeros."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: Seed = None, dtype: Any = np.float32) -> None:
        self.in_features, self.out_features = in_features, out_features
        scale = math.sqrt(2.0 / (in_features + out_features))
        w = generator(rng).random((in_features, out_features)) * scale - scale / 2
        self.weight = Tensor(w.astype(dtype)).requires_grad()
        self.bias = Tensor(np.zeros(out_features, dtype=dtype)).requires_grad() if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = x.matmul(self.weight)
        return y if self.bias is None else y.add(self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class LeakyReLU(Module):
    def __init__(self, slope: float = 0.01) -> None:
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        return x.leaky_relu(self.slope)

    def extra_repr(self) -> str:
        return f"slope={self.slope}"


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class GELU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.gelu()


class Softmax(Module):
    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(self.axis)


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

