"""Op cases of PyTorch's shape methods (squeeze ... scatter_add), einsum, pad and embedding.

References are plain numpy (``np.einsum``, ``np.tile``, ``np.take_along_axis``, ``np.add.at``),
written independently of the ops' kernels.
"""

from __future__ import annotations

import numpy as np
from opcases import Case

import aprender as ap
import aprender.nn.functional as F

_GATHER_IDX = np.array([[0, 3], [2, 2], [1, 0]])
_GATHER0_IDX = np.array([[3, 0], [1, 1], [0, 2]])  # smaller than the input outside dim 0
_SCATTER_IDX = np.array([[0, 2, 2, 1], [2, 2, 0, 1]])  # repeats accumulate
_MASK = np.array([[True, False, False, True], [False, False, True, False],
                  [True, True, False, False]])
_ROW_MASK = np.array([False, True, False, True])
_EMB_IDX = np.array([[1, 4, 1], [0, 3, 4]])


def _take_along(x, index, dim):
    """PyTorch's gather in numpy: the input cut to the index's size outside ``dim``."""
    cut = tuple(slice(None) if k == dim else slice(0, s) for k, s in enumerate(index.shape))
    return np.take_along_axis(x[cut], index, axis=dim)


def _scatter_add(x, index, src, dim):
    out = x.copy()
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = index[pos]
        out[tuple(target)] += src[pos]
    return out


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _pieces(parts):
    """Join pieces, each scaled by its position (so a wrong split shows in the gradient)."""
    return [p * (i + 1) for i, p in enumerate(parts)]


def _einsum_case(name, equation, *shapes, rtol=1e-12):
    return Case(name, lambda *xs: ap.einsum(equation, *xs),
                lambda *xs: np.einsum(equation, *xs), shapes, rtol=rtol)


CASES = [
    Case("squeeze_all", lambda x: x.squeeze(), lambda x: x.squeeze(), ((3, 1, 4, 1),)),
    Case("squeeze_dim", lambda x: x.squeeze(-1), lambda x: x.squeeze(-1), ((3, 1, 4, 1),)),
    Case("squeeze_tuple_keeps_non_1", lambda x: x.squeeze((0, 1)), lambda x: x.squeeze(1),
         ((3, 1, 4, 1),)),
    Case("unsqueeze", lambda x: x.unsqueeze(1), lambda x: x[:, None], ((3, 4),)),
    Case("unsqueeze_last", lambda x: x.unsqueeze(-1), lambda x: x[..., None], ((3, 4),)),
    Case("flatten", lambda x: x.flatten(), lambda x: x.reshape(-1), ((2, 3, 4),)),
    Case("flatten_middle", lambda x: x.flatten(1, 2), lambda x: x.reshape(2, 12, 1),
         ((2, 3, 4, 1),)),
    # a transposed tensor cannot be viewed flat: reshape copies through `contiguous`
    Case("reshape_noncontiguous", lambda x: x.T.reshape(-1), lambda x: x.T.reshape(-1),
         ((3, 4),)),
    Case("contiguous", lambda x: x.permute(2, 0, 1).contiguous() * 2.0,
         lambda x: x.transpose(2, 0, 1) * 2.0, ((2, 3, 4),)),
    Case("reshape_same_shape", lambda x: x.reshape(x.shape) * 3.0, lambda x: x * 3.0, ((3, 4),)),
    Case("permute", lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1), ((2, 3, 4),)),
    Case("permute_negative", lambda x: x.permute((-1, 0, 1)), lambda x: x.transpose(2, 0, 1),
         ((2, 3, 4),)),
    Case("expand", lambda x: x.expand(2, -1, 4), lambda x: np.broadcast_to(x, (2, 3, 4)),
         ((3, 1),)),
    Case("repeat", lambda x: x.repeat(2, 1, 3), lambda x: np.tile(x, (2, 1, 3)), ((2, 3),)),
    Case("repeat_1d", lambda x: x.repeat(3), lambda x: np.tile(x, 3), ((4,),)),
    Case("flip", lambda x: x.flip(0, 1), lambda x: x[::-1, ::-1], ((3, 4),)),
    Case("flip_last", lambda x: x.flip([-1]), lambda x: x[..., ::-1], ((2, 3, 4),)),
    Case("roll", lambda x: x.roll(1, 0), lambda x: np.roll(x, 1, 0), ((3, 4),)),
    Case("roll_two_dims", lambda x: x.roll((1, -2), (0, 1)),
         lambda x: np.roll(np.roll(x, 1, 0), -2, 1), ((3, 4),)),
    Case("roll_flat", lambda x: x.roll(5), lambda x: np.roll(x.reshape(-1), 5).reshape(3, 4),
         ((3, 4),)),
    Case("split", lambda x: ap.concat(_pieces(x.split(2, 1)), dim=1),
         lambda x: np.concatenate(_pieces(np.split(x, [2, 4], 1)), 1), ((3, 5),)),
    Case("split_sections", lambda x: ap.cat(_pieces(x.split([1, 3], dim=0))),
         lambda x: np.concatenate(_pieces(np.split(x, [1], 0))), ((4, 2),)),
    Case("chunk", lambda x: ap.stack(_pieces(x.chunk(3, -1)), dim=0),
         lambda x: np.stack(_pieces(np.split(x, 3, -1))), ((2, 6),)),
    Case("masked_fill", lambda x, m: x.masked_fill(m, -1.5), lambda x, m: np.where(m, -1.5, x),
         ((3, 4),), fixed=(_MASK,)),
    Case("masked_fill_broadcast", lambda x, m: x.masked_fill(m, 0.25),
         lambda x, m: np.where(m, 0.25, x), ((3, 4),), fixed=(_ROW_MASK,)),
    Case("masked_fill_softmax", lambda x, m: x.masked_fill(m, -np.inf).softmax(-1),
         lambda x, m: _softmax(np.where(m, -np.inf, x)), ((3, 4),), fixed=(_ROW_MASK,)),
    Case("tril", lambda x: x.tril(), np.tril, ((4, 4),)),
    Case("tril_below", lambda x: x.tril(-1), lambda x: np.tril(x, -1), ((3, 5),)),
    Case("triu_batched", lambda x: x.triu(1), lambda x: np.triu(x, 1), ((2, 3, 4),)),
    Case("gather", lambda x, i: x.gather(1, i), lambda x, i: _take_along(x, i, 1), ((3, 4),),
         fixed=(_GATHER_IDX,)),
    Case("gather_dim0_smaller_index", lambda x, i: x.gather(0, i),
         lambda x, i: _take_along(x, i, 0), ((4, 5),), fixed=(_GATHER0_IDX,)),
    Case("scatter_add", lambda x, s, i: x.scatter_add(0, i, s),
         lambda x, s, i: _scatter_add(x, i, s, 0), ((3, 4), (2, 4)), fixed=(_SCATTER_IDX,)),
    Case("scatter_add_larger_src", lambda x, s, i: x.scatter_add(1, i.T, s),
         lambda x, s, i: _scatter_add(x, i.T, s, 1), ((4, 3), (5, 3)), fixed=(_SCATTER_IDX,)),
    Case("pad", lambda x: F.pad(x, (1, 2)), lambda x: np.pad(x, ((0, 0), (1, 2))), ((3, 4),)),
    Case("pad_crop_value", lambda x: F.pad(x, (-1, 1, 2, 0), value=0.5),
         lambda x: np.pad(x[:, 1:], ((2, 0), (0, 1)), constant_values=0.5), ((3, 4),)),
    Case("embedding", lambda w, i: F.embedding(i, w), lambda w, i: w[i], ((5, 3),),
         fixed=(_EMB_IDX,)),
    _einsum_case("einsum_matmul", "ij,jk->ik", (3, 4), (4, 5)),
    _einsum_case("einsum_batched", "bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    _einsum_case("einsum_implicit", "ij,kj", (3, 4), (2, 4)),
    _einsum_case("einsum_trace", "ii->", (4, 4)),
    _einsum_case("einsum_diagonal", "ii->i", (4, 4)),
    _einsum_case("einsum_triple_diagonal", "iii->i", (3, 3, 3)),
    _einsum_case("einsum_batched_trace", "bii->b", (2, 3, 3)),
    _einsum_case("einsum_diag_contract", "iij,jk->ik", (3, 3, 4), (4, 2)),
    _einsum_case("einsum_outer", "i,j->ij", (3,), (4,)),
    _einsum_case("einsum_sum_all", "ij->", (3, 4)),
    _einsum_case("einsum_transpose", "ijk->kij", (2, 3, 4)),
    _einsum_case("einsum_own_index", "ij,j->i", (3, 4), (4,)),
    _einsum_case("einsum_summed_alone", "ij,k->j", (3, 4), (2,)),
    _einsum_case("einsum_ellipsis", "...ij,...jk->...ik", (2, 3, 4), (4, 5)),
    _einsum_case("einsum_ellipsis_broadcast", "...i,...i->...", (2, 1, 3), (4, 3)),
    _einsum_case("einsum_size1_broadcast", "ij,ij->ij", (1, 3), (2, 3)),
    _einsum_case("einsum_three", "ij,jk,kl->il", (3, 4), (4, 5), (5, 2)),
    _einsum_case("einsum_mixed_order", "ijk,jil->kl", (2, 3, 4), (3, 2, 5)),
    _einsum_case("einsum_attention", "bhqd,bhkd->bhqk", (2, 2, 3, 4), (2, 2, 5, 4)),
]

#: ops tested only through others (with where)
INDIRECT: set[str] = set()
