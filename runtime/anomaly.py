"""nan/inf checks for ``detect_anomaly()``."""

from __future__ import annotations

import numpy as np

from ..errors import AnomalyError, with_location


def check_finite(op: str, data: np.ndarray, phase: str) -> None:
    """Raise ``AnomalyError`` if a float ``data`` holds nan or inf."""
    if data.dtype.kind in "fc" and not np.isfinite(data).all():
        kind = "nan" if np.isnan(data).any() else "inf"
        raise AnomalyError(with_location(f"{op} ({phase}) produced {kind} in an output of shape "
                                         f"{list(data.shape)}"))
