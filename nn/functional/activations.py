"""Activation functions under PyTorch's names (relu, gelu, silu, elu, softplus, softmax, ...)."""

from __future__ import annotations

__all__: list[str] = []
