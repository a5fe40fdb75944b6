"""Ops with no inputs: constants baked into a graph."""

from __future__ import annotations

import numpy as np

from ..registry import OpDef, register

CONSTANT = register(OpDef(
    name="constant", kind="other", impl=lambda value: value,
    infer=lambda value: (tuple(np.shape(value)), np.asarray(value).dtype),
    attrs=("value",), doc="a constant array held by the graph"))
