"""Lookups and shape helpers: embedding, one_hot, pad."""

from __future__ import annotations

__all__: list[str] = []
