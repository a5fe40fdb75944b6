"""Shape ops: reshape, transpose, broadcast_to, indexing, concat and stack; flip, roll, repeat,
triangles, constant padding, gather and scatter_add."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import DTypeError, describe, with_location
from ..registry import BatchInfo, OpDef, Operand, register
from .batching import axis_batch, elementwise_batch, example_ndim, unit_axes, with_batch
from .rules import OpBase, resolve_shape, shape_error


def _example(x):
    """A zero-stride stand-in of ``x``'s shape and dtype for shape rules that run the kernel."""
    return np.broadcast_to(np.zeros((), dtype=x.dtype), tuple(x.shape))


# --- batching helpers (vmap; rules sit beside their ops) ---------------------------------------

def _permuted(x: Any, order: tuple[int, ...]) -> Any:
    """``x.transpose(order)``, or ``x`` itself when ``order`` keeps every axis in place."""
    return x if order == tuple(range(len(order))) else x.transpose(order)


def _lead_all(name: str) -> Callable:
    """A rule for ops whose every input has the same rank and whose attribute ``name`` is one
    normalized axis: each input with the batch leading (unbatched ones broadcast, a view) and
    that axis moved past the batch axis."""

    def rule(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
        xs = tuple(with_batch(x, b, info.size) for x, b in zip(xs, batched, strict=True))
        return xs[0]._apply(op, xs, {**attrs, name: attrs[name] + 1})

    return rule


@dataclass(frozen=True, slots=True)
class _Block:
    """Where numpy's advanced indexing puts the broadcast axes of an index's arrays in one
    example's result: ``rank`` axes from ``start`` on; first of all (``start`` 0) when the
    advanced items are split by a slice, None or Ellipsis (``split``)."""

    rank: int
    start: int
    split: bool


def _block(index: tuple, ndim: int, ranks: Sequence[int]) -> _Block | None:
    """The advanced block of ``index`` applied to ``ndim`` axes (``ranks[k - 1]``: the rank of
    the array ``Operand(k)`` stands for); None when the index is basic. Index arrays (and
    Python bools, 0-d masks) make the ints advanced too, as in numpy."""
    kinds = [type(item) for item in index]
    if Operand not in kinds and bool not in kinds:
        return None
    advanced = [p for p, kind in enumerate(kinds) if kind in (Operand, int, bool)]
    consumed = sum(kind in (slice, int, Operand) for kind in kinds)
    start = sum(ndim - consumed if item is Ellipsis else 1 for item in index[:advanced[0]])
    rank = max(ranks[item.position - 1] if type(item) is Operand else int(type(item) is bool)
               for item in index if type(item) in (Operand, int, bool))
    split = advanced[-1] - advanced[0] + 1 != len(advanced)
    return _Block(rank, 0 if split else start, split)


@dataclass(frozen=True, slots=True)
class _BatchedIndex:
    """An example's index made to index the batched data (``data_batched``: the data has the
    batch at axis 0), with its arrays (batched ones lined up behind their batch axis)."""

    index: tuple
    arrays: tuple
    block: _Block | None
    data_batched: bool
    arrays_batched: bool

    def order(self, n: int) -> tuple[int, ...]:
        """The transpose of the batched result (``n`` axes per example) that brings it to
        ``(batch, *example axes)``."""
        block, rest = self.block, tuple(range(n + 1))
        if not self.arrays_batched:  # (slice(None), *index): split blocks lead the batch
            k = block.rank if block is not None and block.split else 0
            return (k, *rest[:k], *rest[k + 1:])
        if not self.data_batched:  # the batch leads the block, wherever that goes
            return (block.start, *rest[:block.start], *rest[block.start + 1:])
        # (rows, *index): the block, led by the batch, comes first (split or at 0)
        k, p = block.rank, block.start
        return (0, *rest[k + 1:k + 1 + p], *rest[1:k + 1], *rest[k + 1 + p:])

    def inverse(self, n: int) -> tuple[int, ...]:
        """The transpose that takes ``(batch, *example axes)`` to the batched layout."""
        return tuple(np.argsort(self.order(n)).tolist())


def _batch_index(index: tuple, data_batched: bool, arrays: tuple, arrays_batched: tuple,
                 ndim: int, size: int) -> _BatchedIndex:
    """``index`` (on ``ndim`` example axes) for the batch: with unbatched arrays, a full slice
    over the batch axis; batched arrays pair with their example's data, through a leading
    ``arange(size)`` array when the data is batched too."""
    ranks = [example_ndim(a, b) for a, b in zip(arrays, arrays_batched, strict=True)]
    block = _block(index, ndim, ranks)
    if not any(arrays_batched):
        return _BatchedIndex((slice(None), *index), arrays, block, True, False)
    aligned = tuple(unit_axes(a, block.rank - r) if b else a
                    for a, b, r in zip(arrays, arrays_batched, ranks, strict=True))
    if not data_batched:
        return _BatchedIndex(index, aligned, block, False, True)
    rows = arrays[0]._coerce(np.arange(size).reshape((size,) + (1,) * block.rank))
    moved = tuple(Operand(i.position + 1) if type(i) is Operand else i for i in index)
    return _BatchedIndex((Operand(1), *moved), (rows, *aligned), block, True, True)


def _reshape_infer(x, shape):
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise ValueError(f"cannot view {list(x.shape)} ({int(np.prod(x.shape))} elements) "
                         f"as {list(shape)} ({int(np.prod(shape))} elements)")
    return tuple(shape), np.dtype(x.dtype)


def _reshape_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                   info: BatchInfo) -> Any:
    """The example's shape behind the batch axis (through ``reshape``, which copies a batch
    that numpy cannot view so, such as one vmap moved from another axis)."""
    return xs[0].reshape((info.size, *attrs["shape"]))


RESHAPE = register(OpDef(
    name="reshape", aliases_input=True, kind="view", impl=lambda a, shape: a.reshape(shape),
    infer=_reshape_infer, batch=_reshape_batch,
    vjp=lambda g, out, x, at, needs: (g.reshape(tuple(x[0].shape)),),
    attrs=("shape",), doc="same elements in a new shape",
    template="{{ x[0] }}.reshape({{ a.shape }})"))


def _transpose_infer(x, axes):
    if sorted(axes) != list(range(len(x.shape))):
        raise ValueError(f"axes {list(axes)} are not a permutation of {len(x.shape)} dimensions")
    return tuple(x.shape[a] for a in axes), np.dtype(x.dtype)


def _transpose_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                     info: BatchInfo) -> Any:
    """The batch axis stays first; the example's axes permute behind it."""
    return xs[0]._apply(op, xs, {"axes": (0, *(a + 1 for a in attrs["axes"]))})


TRANSPOSE = register(OpDef(
    name="transpose", aliases_input=True, kind="view",
    impl=lambda a, axes: a.transpose(axes),
    infer=_transpose_infer, batch=_transpose_batch,
    vjp=lambda g, out, x, at, needs: (g.transpose(tuple(np.argsort(at["axes"]).tolist())),),
    attrs=("axes",), doc="permute axes", template="{{ x[0] }}.transpose({{ a.axes }})"))


DETACH = register(OpDef(
    name="detach", aliases_input=True, kind="view", impl=lambda a: a,
    infer=lambda x: (tuple(x.shape), np.dtype(x.dtype)), batch=elementwise_batch,
    doc="the same values with no gradient path (a stop-gradient edge)", template="{{ x[0] }}"))


def _broadcast_to_infer(x, shape):
    try:
        ok = np.broadcast_shapes(tuple(x.shape), tuple(shape)) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"cannot broadcast {list(x.shape)} to {list(shape)}")
    return tuple(shape), np.dtype(x.dtype)


def _broadcast_to_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                        info: BatchInfo) -> Any:
    """The axes the broadcast adds in front of the example go behind the batch axis."""
    shape = tuple(attrs["shape"])
    x = unit_axes(xs[0], len(shape) - example_ndim(xs[0], True))
    return x._apply(op, (x,), {"shape": (info.size, *shape)})


BROADCAST_TO = register(OpDef(
    name="broadcast_to", aliases_input=True, kind="view",
    impl=lambda a, shape: np.broadcast_to(a, shape),
    infer=_broadcast_to_infer, batch=_broadcast_to_batch,
    vjp=lambda g, out, x, at, needs: (g.sum_to(tuple(x[0].shape)),),
    attrs=("shape",), doc="read-only broadcast view; its gradient sums back (sum_to)",
    template="broadcast_to({{ x[0] }}, {{ a.shape }})"))


def _getitem_infer(x, index):
    res = _example(x)[index]
    return tuple(res.shape), np.dtype(x.dtype)


def _getitem_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                   info: BatchInfo) -> Any:
    """A full slice over the batch axis in front of the index."""
    (x,) = xs
    batch = _batch_index(attrs["index"], True, (), (), example_ndim(x, True), info.size)
    out = x._apply(op, xs, {"index": batch.index})
    return _permuted(out, batch.order(out.ndim - 1))


GETITEM = register(OpDef(
    name="getitem", aliases_input=True, kind="view", impl=lambda a, index: a[index],
    infer=_getitem_infer, batch=_getitem_batch,
    vjp=lambda g, out, x, at, needs: (g.unslice(tuple(x[0].shape), at["index"]),),
    attrs=("index",), doc="basic indexing (ints, slices, None, ...): a view",
    template="{{ x[0] }}[{{ a.index }}]"))


def _unslice_impl(a, shape, index):
    res = np.zeros(shape, dtype=a.dtype)
    res[index] = a
    return res


def _unslice_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                   info: BatchInfo) -> Any:
    """Zeros of the batched shape written at the batched index (getitem's rule)."""
    (x,), shape = xs, tuple(attrs["shape"])
    batch = _batch_index(attrs["index"], True, (), (), len(shape), info.size)
    x = _permuted(x, batch.inverse(x.ndim - 1))
    return x._apply(op, (x,), {"shape": (info.size, *shape), "index": batch.index})


UNSLICE = register(OpDef(
    name="unslice", kind="other", impl=_unslice_impl,
    infer=lambda x, shape, index: (tuple(shape), np.dtype(x.dtype)), batch=_unslice_batch,
    vjp=lambda g, out, x, at, needs: (g.getitem(at["index"]),),
    attrs=("shape", "index"), doc="zeros of shape with x written at a basic index "
                                  "(getitem's gradient)"))


def fill_index(index: tuple, arrays: tuple) -> tuple:
    """``index`` with each ``Operand(k)`` replaced by ``arrays[k - 1]`` (input k's array)."""
    return tuple(arrays[i.position - 1] if type(i) is Operand else i for i in index)


def _index_infer(x, *arrays, index):
    for a in arrays:
        if np.dtype(a.dtype).kind not in "iu":
            raise TypeError(f"index arrays must be integers, got {a.dtype}")
    examples = tuple(np.zeros(tuple(a.shape), dtype=np.intp) for a in arrays)
    res = _example(x)[fill_index(index, examples)]
    return tuple(res.shape), np.dtype(x.dtype)


def _no_grads_for_indices(grad, x):
    return (grad,) + (None,) * (len(x) - 1)


def _index_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
    """Batched data takes a full slice over its batch axis, batched index arrays pair with
    their example's data (see ``_batch_index``); the result is transposed to lead with the
    batch."""
    x = xs[0]
    batch = _batch_index(attrs["index"], batched[0], xs[1:], batched[1:],
                         example_ndim(x, batched[0]), info.size)
    out = x._apply(op, (x, *batch.arrays), {"index": batch.index})
    return _permuted(out, batch.order(out.ndim - 1))


INDEX = register(OpDef(
    name="index", kind="other", impl=lambda a, *arrays, index: a[fill_index(index, arrays)],
    infer=_index_infer, save_inputs=True, shape_only=(0,), batch=_index_batch,
    vjp=lambda g, out, x, at, needs: _no_grads_for_indices(
        g.unindex(tuple(x[0].shape), at["index"], x[1:]), x),
    attrs=("index",),
    doc="integer-array (advanced) indexing: the index arrays are inputs %1, %2, ...; a copy",
    template="{{ x[0] }}[{{ a.index }}]"))


def _unindex_impl(a, *arrays, shape, index):
    res = np.zeros(shape, dtype=a.dtype)
    np.add.at(res, fill_index(index, arrays), a)
    return res


def _unindex_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                   info: BatchInfo) -> Any:
    """Zeros of the batched shape with the values, laid out as the batched index reads them,
    added at the batched index (index's rule)."""
    shape = tuple(attrs["shape"])
    batch = _batch_index(attrs["index"], True, xs[1:], batched[1:], len(shape), info.size)
    a = with_batch(xs[0], batched[0], info.size)
    a = _permuted(a, batch.inverse(a.ndim - 1))
    return a._apply(op, (a, *batch.arrays), {"shape": (info.size, *shape),
                                              "index": batch.index})


UNINDEX = register(OpDef(
    name="unindex", kind="other", impl=_unindex_impl, save_inputs=True, shape_only=(0,),
    batch=_unindex_batch,
    infer=lambda x, *arrays, shape, index: (tuple(shape), np.dtype(x.dtype)),
    vjp=lambda g, out, x, at, needs: _no_grads_for_indices(g.index(at["index"], x[1:]), x),
    attrs=("shape", "index"),
    doc="zeros of shape with x added at an integer-array index, repeats accumulating "
        "(index's gradient)"))


def _split_vjp(g, x, axis, *, stacked):
    grads, start = [], 0
    for v in x:
        width = 1 if stacked else v.shape[axis]
        pos = start if stacked else slice(start, start + width)
        grads.append(g.getitem((slice(None),) * axis + (pos,)))
        start += width
    return tuple(grads)


CONCAT = register(OpDef(
    name="concat", kind="other", impl=lambda *a, axis: np.concatenate(a, axis=axis),
    infer=lambda *x, axis: (
        tuple(np.concatenate([_example(v) for v in x], axis=axis).shape),
        np.result_type(*(v.dtype for v in x))),
    vjp=lambda g, out, x, at, needs: _split_vjp(g, x, at["axis"], stacked=False),
    batch=_lead_all("axis"), attrs=("axis",), doc="join tensors along an existing axis",
    template="concatenate(({{ x | join(', ') }},), axis={{ a.axis }}, out={{ out }})"))

STACK = register(OpDef(
    name="stack", kind="other", impl=lambda *a, axis: np.stack(a, axis=axis),
    infer=lambda *x, axis: (
        tuple(np.stack([_example(v) for v in x], axis=axis).shape),
        np.result_type(*(v.dtype for v in x))),
    vjp=lambda g, out, x, at, needs: _split_vjp(g, x, at["axis"], stacked=True),
    batch=_lead_all("axis"), attrs=("axis",), doc="join tensors along a new axis",
    template="stack(({{ x | join(', ') }},), axis={{ a.axis }}, out={{ out }})"))


def _one_hot_impl(labels, num_classes, dtype):
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    hits = labels[..., None] == np.arange(num_classes)
    if not hits.any(axis=-1).all():  # some label outside [0, num_classes)
        raise ValueError(f"labels must lie in [0, {num_classes}), got "
                         f"[{labels.min()}, {labels.max()}]")
    return hits.astype(dtype)


ONE_HOT = register(OpDef(
    name="one_hot", kind="other", impl=_one_hot_impl, checks=True,
    infer=lambda x, num_classes, dtype: (tuple(x.shape) + (num_classes,), np.dtype(dtype)),
    batch=elementwise_batch, attrs=("num_classes", "dtype"),
    doc="integer labels as one-hot rows (no gradient); checks the label range when it runs"))


# --- copies, flips, rolls, tiles, triangles ----------------------------------------------------

CONTIGUOUS = register(OpDef(
    name="contiguous", kind="other", impl=lambda a: np.array(a, order="C", copy=True),
    infer=lambda x: (tuple(x.shape), np.dtype(x.dtype)),
    vjp=lambda g, out, x, at, needs: (g,), batch=elementwise_batch,
    doc="a C-ordered copy (reshape of a non-contiguous tensor copies through it, so the copy "
        "has its own version counter)",
    template="{{ x[0] }}.copy()"))


def _dims_infer(x, dims):
    n = len(x.shape)
    if any(not 0 <= d < max(n, 1) for d in dims) or len(set(dims)) != len(dims):
        raise ValueError(f"dims {list(dims)} are not distinct dimensions of {n}")
    return tuple(x.shape), np.dtype(x.dtype)


FLIP = register(OpDef(
    name="flip", kind="other", impl=lambda a, dims: np.flip(a, dims).copy(),
    infer=_dims_infer,
    vjp=lambda g, out, x, at, needs: (g.flip(at["dims"]),), batch=axis_batch("dims"),
    attrs=("dims",), doc="reverse the order along dims (a copy, as in PyTorch)",
    template="np.flip({{ x[0] }}, {{ a.dims }}).copy()"))


def _roll_infer(x, shifts, dims):
    if dims is not None:
        _dims_infer(x, dims)
        if len(shifts) != len(dims):
            raise ValueError(f"shifts {list(shifts)} and dims {list(dims)} differ in length")
    elif len(shifts) != 1:
        raise ValueError("without dims, shifts must be one number")
    return tuple(x.shape), np.dtype(x.dtype)


def _roll_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
    """Along dims: those dims moved by one; over the flattened example: each example's row."""
    (x,), dims = xs, attrs["dims"]
    if dims is not None:
        return x._apply(op, xs, {**attrs, "dims": tuple(d + 1 for d in dims)})
    rows = x.reshape((info.size, math.prod(x.shape[1:])))
    rolled = rows._apply(op, (rows,), {"shifts": attrs["shifts"], "dims": (1,)})
    return rolled.reshape(tuple(x.shape))


ROLL = register(OpDef(
    name="roll", kind="other", impl=lambda a, shifts, dims: np.roll(a, shifts, axis=dims),
    infer=_roll_infer, batch=_roll_batch,
    vjp=lambda g, out, x, at, needs: (g.roll(tuple(-s for s in at["shifts"]), at["dims"]),),
    attrs=("shifts", "dims"),
    doc="shift elements cyclically along dims (None: over the flattened tensor)",
    template="np.roll({{ x[0] }}, {{ a.shifts }}, axis={{ a.dims }})"))


def _repeat_infer(x, sizes):
    lead = len(sizes) - len(x.shape)
    if lead < 0 or any(s < 0 for s in sizes):
        raise ValueError(f"sizes {list(sizes)} must be non-negative and at least as many as "
                         f"the {len(x.shape)} dimensions")
    padded = (1,) * lead + tuple(x.shape)
    return tuple(s * d for s, d in zip(sizes, padded, strict=True)), np.dtype(x.dtype)


def _repeat_vjp(g, out, x, at, needs):
    sizes = at["sizes"]
    shape = tuple(x[0].shape)
    padded = (1,) * (len(sizes) - len(shape)) + shape
    split = tuple(v for pair in zip(sizes, padded, strict=True) for v in pair)
    summed = g.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
    return (summed.reshape(shape),)


def _repeat_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
    """The axes the sizes add in front of the example go behind the batch axis, which is
    tiled once."""
    sizes = attrs["sizes"]
    x = unit_axes(xs[0], len(sizes) - example_ndim(xs[0], True))
    return x._apply(op, (x,), {"sizes": (1, *sizes)})


REPEAT = register(OpDef(
    name="repeat", kind="other", impl=lambda a, sizes: np.tile(a, sizes),
    infer=_repeat_infer, vjp=_repeat_vjp, batch=_repeat_batch, attrs=("sizes",),
    doc="tile the tensor sizes[i] times along dimension i (PyTorch's repeat, numpy's tile); "
        "the gradient sums the tiles",
    template="np.tile({{ x[0] }}, {{ a.sizes }})"))


def _triangle_infer(x, diagonal):
    if len(x.shape) < 2:
        raise ValueError(f"needs at least 2 dimensions, got {len(x.shape)}")
    return tuple(x.shape), np.dtype(x.dtype)


def _triangle(fn: Callable, word: str) -> OpDef:
    """``tril`` or ``triu`` of the last two dimensions; its gradient is the same triangle."""
    name = fn.__name__
    return register(OpDef(
        name=name, kind="other", impl=lambda a, diagonal: fn(a, diagonal),
        infer=_triangle_infer,
        vjp=lambda g, out, x, at, needs: (getattr(g, name)(at["diagonal"]),),
        batch=elementwise_batch,  # the last two dimensions: the batch leads
        attrs=("diagonal",), doc=f"the {word} triangle of the last two dimensions (the rest "
                                 f"zeroed)",
        template=f"np.{name}({{{{ x[0] }}}}, {{{{ a.diagonal }}}})"))


TRIL = _triangle(np.tril, "lower")
TRIU = _triangle(np.triu, "upper")


# --- padding -----------------------------------------------------------------------------------

def _pad_infer(x, widths, value):
    if len(widths) != len(x.shape) or any(b < 0 or e < 0 for b, e in widths):
        raise ValueError(f"pad widths {list(widths)} must be one non-negative (before, after) "
                         f"pair per dimension of {len(x.shape)}")
    return tuple(d + b + e for d, (b, e) in zip(x.shape, widths, strict=True)), \
        np.dtype(x.dtype)


def _pad_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
    """No padding of the batch axis."""
    return xs[0]._apply(op, xs, {**attrs, "widths": ((0, 0), *attrs["widths"])})


PAD = register(OpDef(
    name="pad", kind="other",
    impl=lambda a, widths, value: np.pad(a, widths, constant_values=value),
    infer=_pad_infer, batch=_pad_batch,
    vjp=lambda g, out, x, at, needs: (g.getitem(tuple(
        slice(b, b + d) for d, (b, _) in zip(x[0].shape, at["widths"], strict=True))),),
    attrs=("widths", "value"),
    doc="constant padding: widths holds a (before, after) pair per dimension; the gradient "
        "is the slice that held the input",
    template="np.pad({{ x[0] }}, {{ a.widths }}, constant_values={{ a.value }})"))


# --- gather and scatter_add (index tensors are inputs) -----------------------------------------

def _check_index_dtype(index):
    if np.dtype(index.dtype).kind not in "iu":
        raise TypeError(f"index must be an integer tensor, got {index.dtype}")


def _gather_infer(x, index, dim):
    _check_index_dtype(index)
    xs, ixs = tuple(x.shape), tuple(index.shape)
    if len(ixs) != len(xs):
        raise ValueError(f"index {list(ixs)} and input {list(xs)} differ in the number of "
                         f"dimensions")
    if any(i > d for k, (i, d) in enumerate(zip(ixs, xs, strict=True)) if k != dim):
        raise ValueError(f"index {list(ixs)} is larger than input {list(xs)} outside "
                         f"dimension {dim}")
    return ixs, np.dtype(x.dtype)


def _check_bounds(index, size, dim):
    if index.size:
        low, high = index.min(), index.max()
        if low < 0 or high >= size:
            bad = low if low < 0 else high
            raise IndexError(f"index {bad} is out of bounds for dimension {dim} with size {size}")


def _grid(index, dim):
    """The full index tuple that puts ``index`` along ``dim`` (open ranges elsewhere)."""
    n = index.ndim
    return tuple(index if k == dim else
                 np.arange(s).reshape((1,) * k + (s,) + (1,) * (n - k - 1))
                 for k, s in enumerate(index.shape))


def _gather_impl(a, index, dim):
    _gather_infer(a, index, dim)  # the shape rule's checks, eagerly too
    _check_bounds(index, a.shape[dim], dim)
    if index.ndim == 0:
        return a.copy()
    return a[_grid(index, dim)]


def _gather_vjp(g, out, x, at, needs):
    dim = at["dim"]
    zeros = g._coerce(0.0).broadcast_to(tuple(x[0].shape))
    return zeros.scatter_add(dim, x[1], g), None


GATHER = register(OpDef(
    name="gather", kind="other", impl=_gather_impl, infer=_gather_infer, vjp=_gather_vjp,
    batch=_lead_all("dim"), save_inputs=True, shape_only=(0,), attrs=("dim",),
    doc="out[i][j][k] = x[index[i][j][k]][j][k] (dim=0), PyTorch's gather; the index tensor is "
        "input %1 (read anew by each compiled call)"))


def _scatter_add_infer(x, index, src, dim):
    _check_index_dtype(index)
    if np.dtype(src.dtype) != np.dtype(x.dtype):
        raise TypeError(f"src dtype {src.dtype} differs from the tensor's {x.dtype}")
    xs, ixs, ss = tuple(x.shape), tuple(index.shape), tuple(src.shape)
    if not len(xs) == len(ixs) == len(ss):
        raise ValueError(f"index {list(ixs)}, src {list(ss)} and tensor {list(xs)} differ in "
                         f"the number of dimensions")
    if any(i > s or (k != dim and i > d)
           for k, (i, s, d) in enumerate(zip(ixs, ss, xs, strict=True))):
        raise ValueError(f"index {list(ixs)} must fit in src {list(ss)}, and in the tensor "
                         f"{list(xs)} outside dimension {dim}")
    return xs, np.dtype(x.dtype)


def _scatter_add_impl(a, index, src, dim):
    _scatter_add_infer(a, index, src, dim)  # the shape rule's checks, eagerly too
    _check_bounds(index, a.shape[dim], dim)
    out = np.array(a, order="C", copy=True)
    if index.ndim == 0:
        out += src
        return out
    if src.shape != index.shape:
        src = src[tuple(slice(0, s) for s in index.shape)]
    np.add.at(out, _grid(index, dim), src)
    return out


def _scatter_add_vjp(g, out, x, at, needs):
    dim, index, src = at["dim"], x[1], x[2]
    gsrc = None
    if needs[2]:
        gsrc = g.gather(dim, index)
        if tuple(index.shape) != tuple(src.shape):
            gsrc = gsrc.unslice(tuple(src.shape), tuple(slice(0, s) for s in index.shape))
    return (g if needs[0] else None), None, gsrc


SCATTER_ADD = register(OpDef(
    name="scatter_add", kind="other", impl=_scatter_add_impl, infer=_scatter_add_infer,
    vjp=_scatter_add_vjp, batch=_lead_all("dim"), save_inputs=True, shape_only=(0, 2),
    attrs=("dim",),
    doc="a copy of x with src added at index along dim (PyTorch's scatter_add; repeats "
        "accumulate); the index tensor is input %1"))


def _ints(values: Any) -> tuple[int, ...]:
    """An int or a sequence of ints as a tuple of Python ints."""
    if isinstance(values, int | np.integer):
        return (int(values),)
    return tuple(int(v) for v in values)


def _views_as(data: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether numpy can give ``data`` in ``shape`` without copying (PyTorch's view rule)."""
    if data.flags.c_contiguous:
        return True
    try:
        np.reshape(data, shape, copy=False)
    except ValueError:
        return False
    return True


_SWAP_2D = {"axes": (1, 0)}


class ShapeMethods(OpBase):
    """Tensor methods of the shape ops (see ``OpMethods``)."""

    __slots__ = ()

    # --- shapes --------------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Any:
        """Same elements in ``shape`` (one ``-1`` allowed): a view, or a copy when the values
        are not laid out so that numpy can view them (the copy has its own version counter)."""
        if len(shape) == 1 and not isinstance(shape[0], int | np.integer):
            shape = tuple(shape[0])
        if -1 in shape or math.prod(shape) != math.prod(self.shape):
            shape = resolve_shape("reshape", self, shape)
        return self._reshape_to(tuple(shape))

    def _reshape_to(self, shape: tuple[int, ...]) -> Any:
        data = getattr(self, "_data", None)  # eager tensors know their memory layout
        if data is not None and not _views_as(data, shape):
            return self._apply(CONTIGUOUS, (self,), {})._reshape_to(shape)
        return self._apply(RESHAPE, (self,), {"shape": shape})

    def view(self, *shape: Any) -> Any:
        """The same memory in ``shape`` (``-1`` allowed); like PyTorch, it raises when the
        values are not laid out so that a view is possible (use ``reshape``, which copies)."""
        if len(shape) == 1 and not isinstance(shape[0], int | np.integer):
            shape = tuple(shape[0])
        shape = resolve_shape("view", self, shape)
        data = getattr(self, "_data", None)
        if data is not None and not _views_as(data, shape):
            raise shape_error("view", f"cannot view {list(self.shape)} as {list(shape)} without "
                                      f"copying: the values are not contiguous in memory (a "
                                      f"transpose, permute or strided slice); use reshape(), "
                                      f"which copies, or contiguous() first", self)
        return self._apply(RESHAPE, (self,), {"shape": shape})

    def broadcast_to(self, shape: Sequence[int]) -> Any:
        """Broadcast to ``shape`` (a read-only view)."""
        return self._apply(BROADCAST_TO, (self,), {"shape": tuple(shape)})

    def detach(self) -> Any:
        """The same values with no gradient (a view: in-place updates show in both)."""
        return self._apply(DETACH, (self,), {})

    def transpose(self, axes: Sequence[int] | None = None) -> Any:
        """Reverse the axes (2-D: matrix transpose), or permute them by ``axes``."""
        n = len(self.shape)
        if axes is None and n == 2:
            return self._apply(TRANSPOSE, (self,), _SWAP_2D)
        perm = tuple(range(n))[::-1] if axes is None else tuple(int(a) % max(n, 1) for a in axes)
        if sorted(perm) != list(range(n)):
            raise shape_error("transpose", f"axes {list(axes or ())} are not a permutation", self)
        return self._apply(TRANSPOSE, (self,), {"axes": perm})

    @property
    def T(self) -> Any:  # noqa: N802 - numpy's name
        """The transpose (axes reversed)."""
        return self.transpose()

    def getitem(self, index: tuple) -> Any:
        """Basic indexing with an already normalised index tuple (see ``__getitem__``)."""
        return self._apply(GETITEM, (self,), {"index": index})

    def index(self, index: tuple, arrays: tuple) -> Any:
        """Integer-array indexing: ``index`` holds ``Operand(k)`` where ``arrays[k - 1]`` goes."""
        return self._apply(INDEX, (self, *arrays), {"index": index})

    def unslice(self, shape: Sequence[int], index: tuple) -> Any:
        """Zeros of ``shape`` with this value written at a basic ``index`` (getitem's
        gradient)."""
        return self._apply(UNSLICE, (self,), {"shape": tuple(shape), "index": index})

    def unindex(self, shape: Sequence[int], index: tuple, arrays: tuple) -> Any:
        """Zeros of ``shape`` with this value added at an integer-array index (index's
        gradient)."""
        return self._apply(UNINDEX, (self, *arrays), {"shape": tuple(shape), "index": index})

    def one_hot(self, num_classes: int, dtype: Any = np.float32) -> Any:
        """These integer labels as one-hot rows of ``num_classes`` (no gradient)."""
        if np.dtype(self.dtype).kind not in "iu":
            raise shape_error("one_hot", f"labels must be integers, got {self.dtype}", self)
        return self._apply(ONE_HOT, (self,),
                           {"num_classes": int(num_classes), "dtype": np.dtype(dtype)})

    # --- PyTorch's shape methods ---------------------------------------------------------------
    def _dim(self, op: str, dim: Any, ndim: int | None = None) -> int:
        """``dim`` as a non-negative int (a 0-d tensor takes 0 and -1, as in PyTorch)."""
        n = len(self.shape) if ndim is None else ndim
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer):
            raise shape_error(op, f"dim must be an int, got {dim!r}", self)
        if not -max(n, 1) <= int(dim) < max(n, 1):
            raise shape_error(op, f"dim {dim} is out of range for {n} dimensions", self)
        return int(dim) % max(n, 1)

    def _dims(self, op: str, dims: Any) -> tuple[int, ...]:
        dims = _ints(dims)
        out = tuple(self._dim(op, d) for d in dims)
        if len(set(out)) != len(out):
            raise shape_error(op, f"dims {list(dims)} repeat a dimension", self)
        return out

    def squeeze(self, dim: Any = None) -> Any:
        """Remove dimensions of size 1: all of them (``dim=None``) or those of ``dim`` (an int or
        a tuple) that have size 1 (others stay, as in PyTorch)."""
        shape = tuple(self.shape)
        if dim is None:
            new = tuple(d for d in shape if d != 1)
        else:
            axes = set(self._dims("squeeze", dim))
            new = tuple(d for i, d in enumerate(shape) if not (i in axes and d == 1))
        return self._reshape_to(new)

    def unsqueeze(self, dim: int) -> Any:
        """Insert a dimension of size 1 at ``dim`` (``-1``: last)."""
        d = self._dim("unsqueeze", dim, len(self.shape) + 1)
        shape = tuple(self.shape)
        return self._reshape_to(shape[:d] + (1,) + shape[d:])

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Any:
        """Join dimensions ``start_dim..end_dim`` into one (a 0-d tensor becomes ``[1]``)."""
        shape = tuple(self.shape)
        if not shape:
            return self._reshape_to((1,))
        s, e = self._dim("flatten", start_dim), self._dim("flatten", end_dim)
        if s > e:
            raise shape_error("flatten", f"start_dim {start_dim} comes after end_dim {end_dim}",
                              self)
        return self._reshape_to(shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])

    def permute(self, *dims: Any) -> Any:
        """Reorder the dimensions: ``x.permute(2, 0, 1)`` or ``x.permute((2, 0, 1))``."""
        perm = self._dims("permute", dims[0] if len(dims) == 1 else dims)
        if len(perm) != len(self.shape):
            raise shape_error("permute", f"dims {list(perm)} are not a permutation of "
                                         f"{len(self.shape)} dimensions", self)
        return self._apply(TRANSPOSE, (self,), {"axes": perm})

    def expand(self, *sizes: Any) -> Any:
        """A broadcast view of ``sizes`` (``-1`` keeps a size; new dimensions lead)."""
        sizes = _ints(sizes[0] if len(sizes) == 1 else sizes)
        shape = tuple(self.shape)
        lead = len(sizes) - len(shape)
        if lead < 0:
            raise shape_error("expand", f"sizes {list(sizes)} have fewer dimensions than the "
                                        f"tensor", self)
        new = []
        for i, s in enumerate(sizes):
            old = shape[i - lead] if i >= lead else None
            if s == -1 and old is not None:
                s = old
            if s < 0 or (old is not None and old != 1 and old != s):
                raise shape_error("expand", f"cannot expand {list(shape)} to {list(sizes)} "
                                            f"(dimension {i})", self)
            new.append(s)
        return self._apply(BROADCAST_TO, (self,), {"shape": tuple(new)})

    def repeat(self, *sizes: Any) -> Any:
        """Tile the tensor ``sizes[i]`` times along dimension ``i`` (PyTorch's ``repeat``,
        numpy's ``tile``; extra leading sizes add dimensions)."""
        sizes = _ints(sizes[0] if len(sizes) == 1 else sizes)
        if len(sizes) < len(self.shape) or any(s < 0 for s in sizes):
            raise shape_error("repeat", f"sizes {list(sizes)} must be non-negative and at least "
                                        f"as many as the dimensions", self)
        return self._apply(REPEAT, (self,), {"sizes": sizes})

    def flip(self, *dims: Any) -> Any:
        """Reverse the order along ``dims`` (a copy, as in PyTorch)."""
        return self._apply(FLIP, (self,),
                           {"dims": self._dims("flip", dims[0] if len(dims) == 1 else dims)})

    def roll(self, shifts: Any, dims: Any = None) -> Any:
        """Shift elements cyclically by ``shifts`` along ``dims`` (None: over the flattened
        tensor, shape kept)."""
        shifts = _ints(shifts)
        if dims is None:
            if len(shifts) != 1:
                raise shape_error("roll", "without dims, shifts must be one number", self)
            return self._apply(ROLL, (self,), {"shifts": shifts, "dims": None})
        dims = self._dims("roll", dims)
        if len(shifts) != len(dims):
            raise shape_error("roll", f"shifts {list(shifts)} and dims {list(dims)} differ in "
                                      f"length", self)
        return self._apply(ROLL, (self,), {"shifts": shifts, "dims": dims})

    def _slice_along(self, d: int, start: int, stop: int) -> Any:
        return self.getitem((slice(None),) * d + (slice(start, stop),))

    def split(self, split_size_or_sections: Any, dim: int = 0) -> tuple:
        """Views of consecutive pieces along ``dim``: of ``split_size`` each (the last may be
        smaller), or of the listed section sizes."""
        d = self._dim("split", dim)
        n = tuple(self.shape)[d] if self.shape else 1
        sizes = split_size_or_sections
        if isinstance(sizes, int | np.integer):
            size = int(sizes)
            if size < 0 or (size == 0 and n):
                raise shape_error("split", f"split_size must be positive, got {size}", self)
            starts = list(range(0, n, size)) or [0]
            return tuple(self._slice_along(d, a, min(a + size, n)) for a in starts)
        sizes = _ints(sizes)
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise shape_error("split", f"sections {list(sizes)} do not add up to {n} (the size "
                                       f"of dimension {d})", self)
        bounds = np.cumsum((0,) + sizes).tolist()
        return tuple(self._slice_along(d, a, b) for a, b in itertools.pairwise(bounds))

    def chunk(self, chunks: int, dim: int = 0) -> tuple:
        """At most ``chunks`` views along ``dim``, each ``ceil(size / chunks)`` long (the last
        may be shorter; fewer chunks when they run out), as in PyTorch."""
        if int(chunks) <= 0:
            raise shape_error("chunk", f"chunks must be positive, got {chunks}", self)
        d = self._dim("chunk", dim)
        n = tuple(self.shape)[d] if self.shape else 1
        if n == 0:
            return tuple(self._slice_along(d, 0, 0) for _ in range(int(chunks)))
        return self.split(-(-n // int(chunks)), d)

    def masked_fill(self, mask: Any, value: Any) -> Any:
        """``value`` where ``mask`` (a bool tensor or array broadcasting to this shape) is true,
        these values elsewhere; no gradient flows to the filled places."""
        if not isinstance(mask, OpBase):
            mask = self._coerce(np.asarray(mask))
        if np.dtype(mask.dtype) != np.bool_:
            raise DTypeError(with_location(f"masked_fill: the mask must be bool, got "
                                           f"{describe(mask)}"))
        try:
            ok = np.broadcast_shapes(tuple(mask.shape), tuple(self.shape)) == tuple(self.shape)
        except ValueError:
            ok = False
        if not ok:
            raise shape_error("masked_fill", f"mask {list(mask.shape)} does not broadcast to "
                                             f"{list(self.shape)}", self, mask)
        if not isinstance(value, OpBase):
            value = self._coerce(value if isinstance(value, bool | int | float)
                                 else np.asarray(value))
        if tuple(value.shape):
            raise shape_error("masked_fill", "value must be a number or a 0-d tensor", self,
                              value)
        if np.dtype(value.dtype) != np.dtype(self.dtype):
            value = value.astype(self.dtype)
        return mask.select(value, self)

    def tril(self, diagonal: int = 0) -> Any:
        """The lower triangle (at and below ``diagonal``) of the last two dimensions."""
        if len(self.shape) < 2:
            raise shape_error("tril", "needs at least 2 dimensions", self)
        return self._apply(TRIL, (self,), {"diagonal": int(diagonal)})

    def triu(self, diagonal: int = 0) -> Any:
        """The upper triangle (at and above ``diagonal``) of the last two dimensions."""
        if len(self.shape) < 2:
            raise shape_error("triu", "needs at least 2 dimensions", self)
        return self._apply(TRIU, (self,), {"diagonal": int(diagonal)})

    def _index_input(self, op: str, index: Any) -> Any:
        if not isinstance(index, OpBase):
            index = self._coerce(np.asarray(index))
        if np.dtype(index.dtype).kind not in "iu":
            raise DTypeError(with_location(f"{op}: index must be an integer tensor, got "
                                           f"{describe(index)}"))
        return index

    def gather(self, dim: int, index: Any) -> Any:
        """``out[i][j][k] = self[index[i][j][k]][j][k]`` for ``dim=0`` (PyTorch's gather);
        ``index`` (a tensor or integer array) is an input, read anew by each compiled call."""
        index = self._index_input("gather", index)
        return self._apply(GATHER, (self, index), {"dim": self._dim("gather", dim)})

    def scatter_add(self, dim: int, index: Any, src: Any) -> Any:
        """A copy of this tensor with ``src`` added at ``index`` along ``dim`` (PyTorch's
        scatter_add: ``out[index[i][j]][j] += src[i][j]`` for ``dim=0``; repeats add up)."""
        index = self._index_input("scatter_add", index)
        if not isinstance(src, OpBase):
            src = self._coerce(np.asarray(src, dtype=self.dtype))
        return self._apply(SCATTER_ADD, (self, index, src), {"dim": self._dim("scatter_add", dim)})

    def contiguous(self) -> Any:
        """This tensor when its values are C-ordered in memory, else a C-ordered copy."""
        data = getattr(self, "_data", None)
        if data is None or data.flags.c_contiguous:
            return self
        return self._apply(CONTIGUOUS, (self,), {})
