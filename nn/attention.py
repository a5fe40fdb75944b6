"""Attention layers: MultiheadAttention and TransformerEncoderLayer, as PyTorch's.

Parameter names and layouts follow PyTorch (``in_proj_weight [3E, E]``, ``in_proj_bias``,
``out_proj``, ``linear1``, ``norm1``, ...) except that every ``Linear`` keeps aprender's
``[in, out]`` weight: a PyTorch state dict loads after transposing the ``out_proj``,
``linear1`` and ``linear2`` weights (see ``MultiheadAttention``'s docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ShapeError, describe, with_location
from ..runtime import Tensor
from ..runtime.factories import Seed, generator
from ..runtime.random import Generator
from .dropout import Dropout
from .functional.attention import add_bias, attention, mask_bias
from .layers import Linear
from .module import Module
from .normalization import LayerNorm

__all__ = ["MultiheadAttention", "TransformerEncoderLayer"]


def _error(op: str, message: str, *operands: Any) -> ShapeError:
    types = ", ".join(describe(v) for v in operands)
    return ShapeError(with_location(f"{op}: {message}" + (f"; operands {types}" if types else "")))


def _xavier_uniform(gen: np.random.Generator, shape: tuple[int, int], dtype: Any) -> Tensor:
    """PyTorch's ``xavier_uniform_`` on a ``[fan_out, fan_in]`` weight."""
    bound = math.sqrt(6.0 / (shape[0] + shape[1]))
    return Tensor(gen.uniform(-bound, bound, shape).astype(dtype)).requires_grad()


def _dropout_generator(rng: Seed) -> Generator | None:
    """Dropout's stream for a layer built with ``rng``: its own, seeded from ``rng``, when one
    is given; None (the default generator) otherwise (as ``nn.Dropout``)."""
    if rng is None:
        return None
    return Generator(int(generator(rng).integers(2**63)))


class MultiheadAttention(Module):
    """Multi-head attention, as PyTorch's ``nn.MultiheadAttention`` (but ``batch_first=True``
    by default).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` takes ``[N, L, E]`` (``[L, N, E]`` when
    ``batch_first=False``; ``[L, E]`` unbatched) and returns ``(output, weights)``: weights
    ``[N, L, S]`` averaged over heads, ``[N, H, L, S]`` with ``average_attn_weights=False``, None
    with ``need_weights=False``. Boolean masks mark what is *masked* (True: not attended), as in
    PyTorch; float masks are added to the scores. ``attn_mask`` is ``[L, S]`` or
    ``[N * H, L, S]``, ``key_padding_mask`` ``[N, S]``. A query that may see no key gives zeros
    (output and weights; PyTorch gives zeros with ``need_weights=False`` and nan otherwise).
    ``is_causal`` is a hint that ``attn_mask`` is the causal mask (which must be given).

    Parameters: ``in_proj_weight [3E, E]`` (Xavier uniform) and ``in_proj_bias [3E]`` (zeros),
    or ``q_proj_weight [E, E]``, ``k_proj_weight [E, kdim]``, ``v_proj_weight [E, vdim]`` when
    ``kdim``/``vdim`` differ from ``embed_dim``; ``out_proj`` an ``nn.Linear(E, E)``. Porting
    PyTorch weights: every entry of its state dict loads as it is except
    ``out_proj.weight``, which is transposed (aprender's Linear is ``[in, out]``).

    Dropout on the attention weights (``dropout``, in training mode) draws from the layer's own
    stream when ``rng`` is given, else from the default generator.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = True,
                 rng: Seed = None, dtype: Any = np.float32) -> None:
        if embed_dim <= 0 or num_heads <= 0:
            raise _error("MultiheadAttention", f"embed_dim and num_heads must be positive, got "
                                               f"{embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise _error("MultiheadAttention", f"embed_dim ({embed_dim}) must be divisible by "
                                               f"num_heads ({num_heads})")
        if not 0.0 <= dropout <= 1.0:
            raise _error("MultiheadAttention", f"dropout must lie in [0, 1], got {dropout}")
        gen = generator(rng)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = float(dropout), batch_first
        self.head_dim = embed_dim // num_heads
        e = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _xavier_uniform(gen, (3 * e, e), dtype)
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            self.q_proj_weight = _xavier_uniform(gen, (e, e), dtype)
            self.k_proj_weight = _xavier_uniform(gen, (e, self.kdim), dtype)
            self.v_proj_weight = _xavier_uniform(gen, (e, self.vdim), dtype)
        self.in_proj_bias = (Tensor(np.zeros(3 * e, dtype=dtype)).requires_grad() if bias
                             else None)
        self.out_proj = Linear(e, e, bias=bias, rng=gen, dtype=dtype)
        self.generator = _dropout_generator(gen if rng is not None else None)

    # --- projections ---------------------------------------------------------------------------
    def _weight(self, i: int) -> Tensor:
        """The ``[E, in]`` projection weight of the query (0), key (1) or value (2)."""
        if self.in_proj_weight is not None:
            e = self.embed_dim
            return self.in_proj_weight[i * e:(i + 1) * e]
        return (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]

    def _project(self, x: Tensor, first: int, count: int) -> Tensor:
        """``x [T, in] @ W^T + b`` for the stacked projections ``first .. first + count``."""
        e = self.embed_dim
        if self.in_proj_weight is not None and count > 1:
            w = (self.in_proj_weight if count == 3
                 else self.in_proj_weight[first * e:(first + count) * e])
        else:
            w = self._weight(first)
        y = x.matmul(w.T)
        if self.in_proj_bias is not None:
            b = self.in_proj_bias
            y = y.add(b if count == 3 else b[first * e:(first + count) * e])
        return y

    def _heads(self, y: Tensor, a: int, b: int, count: int, seq_first: bool) -> list[Tensor]:
        """``count`` projections ``y [a * b, count * E]`` (rows in ``(a, b)`` order: ``(N, L)``,
        or ``(L, N)`` when ``seq_first``) as ``count`` tensors ``[N, H, L, D]``."""
        h, d = self.num_heads, self.head_dim
        if count == 1:
            perm = (1, 2, 0, 3) if seq_first else (0, 2, 1, 3)
            return [y.reshape((a, b, h, d)).transpose(perm)]
        perm = (2, 1, 3, 0, 4) if seq_first else (2, 0, 3, 1, 4)
        stacked = y.reshape((a, b, count, h, d)).transpose(perm)
        return [stacked[i] for i in range(count)]

    # --- masks ---------------------------------------------------------------------------------
    def _bias(self, attn_mask: Any, key_padding_mask: Any, n: int, length: int, source: int,
              dtype: np.dtype, batched: bool, operands: tuple) -> Any:
        """The two masks as one additive bias broadcastable to ``[N, H, L, S]``."""
        op, h = "MultiheadAttention", self.num_heads
        bias = None
        if attn_mask is not None:
            a = mask_bias(op, attn_mask, dtype, keep_true=False)
            shape = tuple(a.shape)
            if shape == (length, source):
                pass
            elif len(shape) == 3 and shape == ((n * h if batched else h), length, source):
                a = a.reshape((n, h, length, source))
            else:
                want = f"[{length}, {source}] or [{n * h if batched else h}, {length}, {source}]"
                raise _error(op, f"attn_mask has shape {list(shape)}, expected {want}",
                             *operands)
            bias = a
        if key_padding_mask is not None:
            k = mask_bias(op, key_padding_mask, dtype, keep_true=False)
            want_shape = (n, source) if batched else (source,)
            if tuple(k.shape) != want_shape:
                raise _error(op, f"key_padding_mask has shape {list(k.shape)}, expected "
                                 f"{list(want_shape)}", *operands)
            bias = add_bias(bias, k.reshape((n, 1, 1, source)))
        return bias

    # --- forward -------------------------------------------------------------------------------
    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        op = "MultiheadAttention"
        operands = (query, key, value)
        if not all(isinstance(t, Tensor) for t in operands):
            raise _error(op, "query, key and value must be tensors", *operands)
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise _error(op, "query, key and value must all be 3-D (batched) or all 2-D "
                             "(unbatched)", *operands)
        if (query.shape[-1], key.shape[-1], value.shape[-1]) != (
                self.embed_dim, self.kdim, self.vdim):
            raise _error(op, f"the last axes of query, key and value must be embed_dim, kdim and "
                             f"vdim ({self.embed_dim}, {self.kdim}, {self.vdim})", *operands)
        if key.shape[:-1] != value.shape[:-1]:
            raise _error(op, "key and value must have the same batch and length", *operands)
        if is_causal and attn_mask is None:
            raise _error(op, "is_causal=True is a hint that attn_mask is the causal mask: give "
                             "attn_mask too")
        batched = query.ndim == 3
        seq_first = batched and not self.batch_first
        if not batched:
            length, n, source = query.shape[0], 1, key.shape[0]
        elif seq_first:  # [L, N, E]
            length, n, source = query.shape[0], query.shape[1], key.shape[0]
        else:  # [N, L, E]
            n, length, source = query.shape[0], query.shape[1], key.shape[1]
        if batched and key.shape[1 if seq_first else 0] != n:
            raise _error(op, "query and key must have the same batch size", *operands)
        a, b = (length, n) if seq_first else (n, length)
        e = self.embed_dim
        q2 = query.reshape((a * b, e))
        if query is key and key is value:  # self-attention: one matmul for q, k and v
            q, k, v = self._heads(self._project(q2, 0, 3), a, b, 3, seq_first)
        else:
            sa, sb = (source, n) if seq_first else (n, source)
            (q,) = self._heads(self._project(q2, 0, 1), a, b, 1, seq_first)
            k2 = key.reshape((sa * sb, self.kdim))
            if key is value and self._qkv_same_embed_dim:  # one matmul for k and v
                k, v = self._heads(self._project(k2, 1, 2), sa, sb, 2, seq_first)
            else:
                (k,) = self._heads(self._project(k2, 1, 1), sa, sb, 1, seq_first)
                v2 = value.reshape((sa * sb, self.vdim))
                (v,) = self._heads(self._project(v2, 2, 1), sa, sb, 1, seq_first)
        bias = self._bias(attn_mask, key_padding_mask, n, length, source,
                          np.dtype(query.dtype), batched, operands)
        p = self.dropout if self.training else 0.0
        out, probs = attention(q, k, v, bias, p, 1.0 / math.sqrt(self.head_dim), self.generator)
        out = out.transpose((2, 0, 1, 3) if seq_first else (0, 2, 1, 3)).reshape((a * b, e))
        out = self.out_proj(out).reshape((a, b, e) if batched else (length, e))
        if not need_weights:
            return out, None
        weights = probs.mean(1) if average_attn_weights else probs
        return out, weights if batched else weights.reshape(weights.shape[1:])

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
                f", batch_first={self.batch_first}")


def _relu(x: Tensor) -> Tensor:
    return x.relu()


def _gelu(x: Tensor) -> Tensor:
    return x.gelu(approximate="none")  # exact (erf) GELU, as PyTorch's "gelu"


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": _relu, "gelu": _gelu}


class TransformerEncoderLayer(Module):
    """One Transformer encoder layer, as PyTorch's ``nn.TransformerEncoderLayer`` (but
    ``batch_first=True`` by default): self-attention then a feed-forward block, each with
    dropout, a residual connection and LayerNorm (after, or before with ``norm_first=True``).

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``; masks as in
    ``MultiheadAttention``. ``activation`` is ``"relu"``, ``"gelu"`` (exact, erf-based) or a
    callable (a function or a module). Sub-modules as PyTorch's: ``self_attn``, ``linear1``,
    ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``dropout1``, ``dropout2``; a PyTorch state
    dict loads after transposing ``self_attn.out_proj.weight``, ``linear1.weight`` and
    ``linear2.weight``. ``rng`` seeds the initial weights and gives the dropouts their own
    streams (without it they draw from the default generator).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str | Callable[[Tensor], Tensor] = "relu",
                 layer_norm_eps: float = 1e-5, batch_first: bool = True, norm_first: bool = False,
                 bias: bool = True, rng: Seed = None, dtype: Any = np.float32) -> None:
        if isinstance(activation, str) and activation not in _ACTIVATIONS:
            raise ValueError(with_location(f"TransformerEncoderLayer: activation should be relu "
                                           f"or gelu, not {activation!r}"))
        gen = generator(rng)
        drop_rng = gen if rng is not None else None
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, rng=gen, dtype=dtype)
        self.self_attn.generator = _dropout_generator(drop_rng)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, rng=gen, dtype=dtype)
        self.dropout = Dropout(dropout, rng=drop_rng)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, rng=gen, dtype=dtype)
        self.norm_first = norm_first
        norm_bias = {} if bias else {"bias": False}
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype, **norm_bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype, **norm_bias)
        self.dropout1 = Dropout(dropout, rng=drop_rng)
        self.dropout2 = Dropout(dropout, rng=drop_rng)
        self.activation = (_ACTIVATIONS[activation] if isinstance(activation, str)
                           else activation)

    def forward(self, src: Tensor, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = x.add(self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal))
            return x.add(self._ff_block(self.norm2(x)))
        x = self.norm1(x.add(self._sa_block(x, src_mask, src_key_padding_mask, is_causal)))
        return self.norm2(x.add(self._ff_block(x)))

    def _sa_block(self, x: Tensor, attn_mask: Any, key_padding_mask: Any,
                  is_causal: bool) -> Tensor:
        out, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=is_causal)
        return self.dropout1(out)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"
