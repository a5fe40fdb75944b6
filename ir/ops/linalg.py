"""Matrix products."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import OpDef, register
from .rules import NO_ATTRS, OpBase, unbroadcast


def _matmul_infer(a, b):
    sa, sb = tuple(a.shape), tuple(b.shape)
    if not sa or not sb:
        raise ValueError("matmul needs at least 1-D operands")
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise ValueError(f"inner dimensions differ: {list(sa)} @ {list(sb)} ({ka} != {kb})")
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    shape = tuple(batch) + (sa[-2:-1] if len(sa) > 1 else ()) + (sb[-1:] if len(sb) > 1 else ())
    return shape, np.result_type(a.dtype, b.dtype)


def _swap_last(v):
    axes = list(range(v.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return v.transpose(tuple(axes))


def _matmul_vjp(g, out, x, at, needs):
    a, b = x
    if a.ndim == 2 and b.ndim == 2:
        return (g.matmul(b.T) if needs[0] else None, a.T.matmul(g) if needs[1] else None)
    # Treat 1-D operands as a row (a) or a column (b) matrix, then use the 2-D rules.
    a2 = a.reshape((1,) + tuple(a.shape)) if a.ndim == 1 else a
    b2 = b.reshape(tuple(b.shape) + (1,)) if b.ndim == 1 else b
    out_shape = tuple(np.broadcast_shapes(tuple(a2.shape[:-2]), tuple(b2.shape[:-2]))) + (
        a2.shape[-2], b2.shape[-1])
    g2 = g.reshape(out_shape) if tuple(g.shape) != out_shape else g
    ga = gb = None
    if needs[0]:
        ga = unbroadcast(g2.matmul(_swap_last(b2)), tuple(a2.shape))
        ga = ga.reshape(tuple(a.shape)) if a.ndim == 1 else ga
    if needs[1]:
        gb = unbroadcast(_swap_last(a2).matmul(g2), tuple(b2.shape))
        gb = gb.reshape(tuple(b.shape)) if b.ndim == 1 else gb
    return ga, gb


MATMUL = register(OpDef(
    name="matmul", kind="matmul", impl=np.matmul, infer=_matmul_infer, vjp=_matmul_vjp,
    save_inputs=True, doc="matrix product with numpy matmul rules (1-D, 2-D, batched)",
    # np.dot with out= is the fastest 2-D product (PERF-NOTES rule 2)
    template="{{ 'dot' if ndims[0] <= 2 and ndims[1] <= 2 else 'matmul' }}({{ x[0] }}, {{ x[1] }}, "
             "out={{ out }})"))


class LinalgMethods(OpBase):
    """Tensor methods of the matrix products (see ``OpMethods``)."""

    __slots__ = ()

    # --- matmul --------------------------------------------------------------------------------
    def matmul(self, other: Any) -> Any:
        """Matrix product with numpy ``matmul`` rules."""
        if not isinstance(other, OpBase):
            other = self._coerce(other)
        return self._apply(MATMUL, (self, other), NO_ATTRS)
