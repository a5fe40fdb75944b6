"""Attention layers: MultiheadAttention and TransformerEncoderLayer."""

from __future__ import annotations

__all__: list[str] = []
