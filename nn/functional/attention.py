"""Attention: scaled_dot_product_attention.

Built from existing ops (one batched matmul for the scores, softmax, one batched matmul for the
output), so it runs eagerly, differentiates to any order and compiles like any other code. A
mask is an additive float bias on the scores (a boolean mask becomes 0 / -inf); numpy masks and
the causal mask are constants, tensor masks are inputs. A query row whose keys are all masked
gives zeros (as PyTorch's ``scaled_dot_product_attention``), never nan, in the value and in
every gradient.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ...errors import DTypeError, ShapeError, describe, with_location
from ...runtime import Tensor
from .random import dropout

__all__ = ["scaled_dot_product_attention"]

_OP = "scaled_dot_product_attention"
Mask = Tensor | np.ndarray


def _error(op: str, message: str, *operands: Any) -> ShapeError:
    types = ", ".join(describe(v) for v in operands)
    return ShapeError(with_location(f"{op}: {message}" + (f"; operands {types}" if types else "")))


def _dtype_error(op: str, message: str) -> DTypeError:
    return DTypeError(with_location(f"{op}: {message}"))


def _tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(np.asarray(value))


def _swap_last(ndim: int) -> tuple[int, ...]:
    axes = list(range(ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return tuple(axes)


@functools.lru_cache(maxsize=64)
def causal_bias(length: int, source: int, dtype: np.dtype) -> np.ndarray:
    """The additive causal mask ``[L, S]``: 0 on and below the diagonal (query ``i`` sees keys
    ``0..i``, aligned at the top left as PyTorch's ``is_causal``), -inf above; read-only."""
    bias = np.where(np.tri(length, source, dtype=bool), 0.0, -np.inf).astype(dtype)
    bias.setflags(write=False)
    return bias


def mask_bias(op: str, mask: Any, dtype: np.dtype, keep_true: bool) -> Mask:
    """``mask`` as an additive float bias of ``dtype``: a boolean mask gives 0 where it lets a
    key take part and -inf where not (``keep_true``: True means take part, as SDPA's
    ``attn_mask``; otherwise True means masked, as MultiheadAttention's masks), a float mask is
    cast to ``dtype``. Numpy (or list) masks stay numpy, tensors stay tensors."""
    if not isinstance(mask, Tensor):
        mask = np.asarray(mask)
    kind = np.dtype(mask.dtype).kind
    if kind == "b":
        if isinstance(mask, np.ndarray):
            return np.where(mask if keep_true else ~mask, 0.0, -np.inf).astype(dtype)
        zero, blocked = Tensor(np.zeros((), dtype)), Tensor(np.full((), -np.inf, dtype))
        return mask.select(zero, blocked) if keep_true else mask.select(blocked, zero)
    if kind != "f":
        raise _dtype_error(op, f"a mask must be bool or float, got {mask.dtype}")
    return mask.astype(dtype)


def add_bias(a: Mask | None, b: Mask | None) -> Mask | None:
    """The sum of two additive masks (either may be None)."""
    if a is None or b is None:
        return a if b is None else b
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a + b
    return a.add(b) if isinstance(a, Tensor) else b.add(a)


def _guard_rows(bias: Mask) -> tuple[Mask, Mask | None]:
    """For rows of ``bias`` that are -inf everywhere (a query that may see no key): the bias with
    those rows set to 0 (so softmax stays finite) and a 0/1 ``keep`` factor ``[..., 1]`` that
    zeroes them after softmax; ``keep`` is None when a numpy bias has no such row. A tensor bias
    is checked by ops, so compiled code handles whatever mask it is given."""
    if isinstance(bias, np.ndarray):
        dead = np.isneginf(bias).all(axis=-1, keepdims=True)
        if not dead.any():
            return bias, None
        return np.where(dead, 0.0, bias).astype(bias.dtype), (~dead).astype(bias.dtype)
    blocked = bias.eq(-np.inf).astype(bias.dtype).sum(-1, keepdims=True)
    dead = blocked.eq(float(bias.shape[-1]))
    zero, one = Tensor(np.zeros((), bias.dtype)), Tensor(np.ones((), bias.dtype))
    return dead.select(zero, bias), dead.select(zero, one)


def attention(query: Tensor, key: Tensor, value: Tensor, bias: Mask | None, dropout_p: float,
              scale: float, generator: Any = None) -> tuple[Tensor, Tensor]:
    """``(softmax(q k^T * scale + bias) [dropped out] @ v, the attention probabilities)`` for
    ``q [..., L, E]``, ``k [..., S, E]``, ``v [..., S, Ev]`` and an additive ``bias``
    broadcastable to ``[..., L, S]`` (the shared core of SDPA and MultiheadAttention)."""
    q = query.mul(scale) if scale != 1.0 else query
    scores = q.matmul(key.transpose(_swap_last(key.ndim)))
    if scores.shape[-1] == 0:  # no keys: the output is zeros (the empty product)
        return scores.matmul(value), scores
    keep = None
    if bias is not None:
        bias, keep = _guard_rows(bias)
        scores = scores.add(bias)
    probs = scores.softmax(-1)
    if keep is not None:
        probs = probs.mul(keep)
    if dropout_p > 0.0:
        probs = dropout(probs, dropout_p, training=True, generator=generator)
    return probs.matmul(value), probs


def _check_mask(op: str, mask: Mask, scores_shape: tuple[int, ...], *operands: Any) -> None:
    try:
        ok = tuple(np.broadcast_shapes(tuple(mask.shape), scores_shape)) == scores_shape
    except ValueError:
        ok = False
    if not ok:
        raise _error(op, f"attn_mask of shape {list(mask.shape)} does not broadcast to the "
                         f"attention scores [..., L, S] = {list(scores_shape)}", *operands)


def _group_heads(x: Mask, heads: int, groups: int) -> Mask:
    """A ``[..., H, L, S]``-broadcastable array as ``[..., H/groups, groups, L, S]``-
    broadcastable (grouped-query attention): a head axis of size H splits, size 1 (or none)
    gains a broadcast axis."""
    shape = tuple(x.shape)
    if len(shape) >= 3 and shape[-3] == heads:
        new = shape[:-3] + (heads // groups, groups) + shape[-2:]
    else:
        new = shape[:-2] + (1,) + shape[-2:]
    return x.reshape(new)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False, *, generator: Any = None) -> Tensor:
    """``softmax(query @ key^T * scale + mask) @ value``, as PyTorch's.

    ``query [..., L, E]``, ``key [..., S, E]``, ``value [..., S, Ev]`` give ``[..., L, Ev]``
    (batch axes broadcast). ``attn_mask`` broadcasts to ``[..., L, S]``: boolean (True: the key
    takes part) or float (added to the scores). ``is_causal`` masks keys after the query
    (``tril`` of ``[L, S]``; not together with ``attn_mask``). ``scale`` defaults to
    ``1 / sqrt(E)``. ``dropout_p`` drops attention probabilities with ``F.dropout`` (always,
    as PyTorch's SDPA; pass 0 in evaluation) drawing from ``generator`` (an aprender extension;
    None: the default generator). ``enable_gqa``: key and value may have fewer heads (axis -3)
    than the query, each serving ``Hq / Hkv`` consecutive query heads. A query whose keys are
    all masked gives zeros.
    """
    query, key, value = _tensor(query), _tensor(key), _tensor(value)
    operands = (query, key, value)
    if min(query.ndim, key.ndim, value.ndim) < 2:
        raise _error(_OP, "query, key and value must be at least 2-D ([..., L, E], [..., S, E], "
                          "[..., S, Ev])", *operands)
    dtypes = {np.dtype(t.dtype) for t in operands}
    if len(dtypes) != 1 or np.dtype(query.dtype).kind != "f":
        raise _dtype_error(_OP, "query, key and value must have one floating dtype, got "
                                f"{query.dtype}, {key.dtype}, {value.dtype}")
    if key.shape[-1] != query.shape[-1]:
        raise _error(_OP, f"query and key must share the embedding size E (last axis), got "
                          f"{query.shape[-1]} and {key.shape[-1]}", *operands)
    if key.shape[-2] != value.shape[-2]:
        raise _error(_OP, f"key and value must have the same length S (axis -2), got "
                          f"{key.shape[-2]} and {value.shape[-2]}", *operands)
    if not 0.0 <= dropout_p <= 1.0:
        raise _error(_OP, f"dropout_p must lie in [0, 1], got {dropout_p}")
    if is_causal and attn_mask is not None:
        raise _error(_OP, "give attn_mask or is_causal=True, not both")
    groups = 1
    if enable_gqa and query.ndim >= 3 and key.ndim >= 3 and query.shape[-3] != key.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if key.shape[-3] != value.shape[-3] or hq % hk:
            raise _error(_OP, f"enable_gqa needs the query heads ({hq}) to be a multiple of the "
                              f"key and value heads ({hk}, {value.shape[-3]})", *operands)
        groups = hq // hk
    def heads_as_query(t: Tensor) -> tuple[int, ...]:  # grouped key/value heads count as Hq
        return t.shape[:-3] + query.shape[-3:-2] if groups > 1 else t.shape[:-2]

    try:
        batch = tuple(np.broadcast_shapes(query.shape[:-2], heads_as_query(key),
                                          heads_as_query(value)))
    except ValueError:
        hint = " (pass enable_gqa=True for fewer key/value heads)" if not enable_gqa else ""
        raise _error(_OP, f"the batch axes of query, key and value do not broadcast{hint}",
                     *operands) from None
    length, source = query.shape[-2], key.shape[-2]
    dtype = np.dtype(query.dtype)
    bias: Mask | None = None
    if is_causal:
        bias = causal_bias(length, source, dtype)
    elif attn_mask is not None:
        bias = mask_bias(_OP, attn_mask, dtype, keep_true=True)
        _check_mask(_OP, bias, batch + (length, source), *operands, attn_mask)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    if groups == 1:
        out, _ = attention(query, key, value, bias, float(dropout_p), scale, generator)
        return out
    # grouped-query attention: query [..., Hk * g, L, E] -> [..., Hk, g, L, E]; key and value
    # [..., Hk, 1, S, E] broadcast over the g query heads of their group (no copies)
    hk = key.shape[-3]
    q = query.reshape(query.shape[:-3] + (hk, groups) + query.shape[-2:])
    k = key.reshape(key.shape[:-2] + (1,) + key.shape[-2:])
    v = value.reshape(value.shape[:-2] + (1,) + value.shape[-2:])
    if bias is not None and len(bias.shape) >= 3:
        bias = _group_heads(bias, query.shape[-3], groups)
    out, _ = attention(q, k, v, bias, float(dropout_p), scale, generator)
    return out.reshape(query.shape[:-1] + (value.shape[-1],))
