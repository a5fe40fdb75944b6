"""Op cases of ``F.scaled_dot_product_attention`` (a composite of matmul, softmax, add, mul,
where): values against a numpy reference, float32, first- and second-order gradients, shape
rules and compiled-equals-eager (masks are fixed numpy arguments, so the compiled call takes
them as tensor inputs while the eager call gets numpy arrays)."""

from __future__ import annotations

import numpy as np
from opcases import Case

import aprender.nn.functional as F  # noqa: N812 - PyTorch's alias


def ref_sdpa(q, k, v, mask=None, is_causal=False, scale=None, gqa=False):
    """Attention written out in numpy; a query row whose keys are all masked gives zeros."""
    if gqa:  # PyTorch's repeat_interleave of the key/value heads
        rep = q.shape[-3] // k.shape[-3]
        k, v = np.repeat(k, rep, axis=-3), np.repeat(v, rep, axis=-3)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    if is_causal:
        mask = np.tril(np.ones(s.shape[-2:], dtype=bool))
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    top = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isneginf(top), 0.0, top))
    total = e.sum(axis=-1, keepdims=True)
    p = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return np.matmul(p, v)


_rng = np.random.default_rng(7)
#: [3, 5]: row 1 sees no key, the others some
BOOL_MASK = _rng.random((3, 5)) > 0.4
BOOL_MASK[0, 0], BOOL_MASK[2, 4], BOOL_MASK[1] = True, True, False
#: [2, 1, 3, 5] float: finite biases, some -inf, and one row all -inf
FLOAT_MASK = _rng.standard_normal((2, 1, 3, 5))
FLOAT_MASK[0, 0, 0, 1:3] = -np.inf
FLOAT_MASK[1, 0, 2] = -np.inf
#: [2, 4, 3, 5] per head (grouped-query case)
HEAD_MASK = _rng.random((2, 4, 3, 5)) > 0.3


def _sdpa(**kw):
    return lambda q, k, v, *mask: F.scaled_dot_product_attention(
        q, k, v, *(mask and (mask[0],)), **kw)


def _ref(**kw):
    return lambda q, k, v, *mask: ref_sdpa(q, k, v, *(mask and (mask[0],)), **kw)


def _case(name, shapes, fixed=(), ref=None, **kw):
    """``F.scaled_dot_product_attention(..., **kw)`` against ``ref_sdpa(..., **(ref or kw))``."""
    return Case(name, _sdpa(**kw), _ref(**(kw if ref is None else ref)), shapes, fixed=fixed,
                rtol=1e-11)


CASES = [
    _case("sdpa_2d", ((3, 4), (5, 4), (5, 2))),
    _case("sdpa_batched", ((2, 3, 4), (2, 5, 4), (2, 5, 3))),
    _case("sdpa_broadcast_batch", ((2, 2, 3, 4), (1, 2, 5, 4), (2, 1, 5, 3))),
    _case("sdpa_scale", ((2, 3, 4), (2, 5, 4), (2, 5, 3)), scale=0.7),
    _case("sdpa_bool_mask", ((2, 3, 4), (2, 5, 4), (2, 5, 3)), (BOOL_MASK,)),
    _case("sdpa_float_mask", ((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)), (FLOAT_MASK,)),
    _case("sdpa_causal", ((2, 4, 3), (2, 4, 3), (2, 4, 2)), is_causal=True),
    _case("sdpa_causal_more_queries", ((5, 3), (3, 3), (3, 2)), is_causal=True),
    _case("sdpa_causal_more_keys", ((2, 3), (5, 3), (5, 2)), is_causal=True),
    _case("sdpa_gqa", ((2, 4, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)), (HEAD_MASK,),
          ref={"gqa": True}, enable_gqa=True),
    _case("sdpa_gqa_causal", ((4, 3, 4), (2, 5, 4), (2, 5, 3)), ref={"gqa": True,
          "is_causal": True}, enable_gqa=True, is_causal=True),
]
