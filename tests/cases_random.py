"""Op cases of the random ops: dropout with a generator made inside the function."""

from __future__ import annotations

import numpy as np
from opcases import Case

from aprender.nn import functional as F
from aprender.runtime.random import Generator


def _dropout_ref(x: np.ndarray, p: float, seed: int) -> np.ndarray:
    stream = np.random.Generator(np.random.Philox(key=seed, counter=(0, 0, 0, 0)))
    keep = stream.random(x.shape, dtype=x.dtype) >= p
    return x * (keep.astype(x.dtype) * (1.0 / (1.0 - p)))


CASES = [
    Case("dropout", lambda x: F.dropout(x, 0.4, generator=Generator(3)),
         lambda x: _dropout_ref(x, 0.4, 3), ((6, 5),)),
]

INDIRECT = {"random"}  # draws record no node eagerly: tests/test_random.py (compiled, eager)
