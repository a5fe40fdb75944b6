"""Loss functions under PyTorch's names and defaults (mean reduction)."""

from __future__ import annotations

__all__: list[str] = []
