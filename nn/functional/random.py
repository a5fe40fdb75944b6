"""Random ops drawing from an explicit generator: dropout."""

from __future__ import annotations

__all__: list[str] = []
