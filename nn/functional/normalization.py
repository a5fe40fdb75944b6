"""Normalisation: batch_norm and layer_norm."""

from __future__ import annotations

__all__: list[str] = []
