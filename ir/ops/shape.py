"""Shape ops: reshape, transpose, broadcast_to, indexing, concat and stack."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..registry import OpDef, Operand, register
from .rules import OpBase, resolve_shape, shape_error


def _example(x):
    """A zero-stride stand-in of ``x``'s shape and dtype for shape rules that run the kernel."""
    return np.broadcast_to(np.zeros((), dtype=x.dtype), tuple(x.shape))


def _reshape_infer(x, shape):
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise ValueError(f"cannot view {list(x.shape)} ({int(np.prod(x.shape))} elements) "
                         f"as {list(shape)} ({int(np.prod(shape))} elements)")
    return tuple(shape), np.dtype(x.dtype)


RESHAPE = register(OpDef(
    name="reshape", aliases_input=True, kind="view", impl=lambda a, shape: a.reshape(shape),
    infer=_reshape_infer,
    vjp=lambda g, out, x, at, needs: (g.reshape(tuple(x[0].shape)),),
    attrs=("shape",), doc="same elements in a new shape",
    template="{{ x[0] }}.reshape({{ a.shape }})"))


def _transpose_infer(x, axes):
    if sorted(axes) != list(range(len(x.shape))):
        raise ValueError(f"axes {list(axes)} are not a permutation of {len(x.shape)} dimensions")
    return tuple(x.shape[a] for a in axes), np.dtype(x.dtype)


TRANSPOSE = register(OpDef(
    name="transpose", aliases_input=True, kind="view",
    impl=lambda a, axes: a.transpose(axes),
    infer=_transpose_infer,
    vjp=lambda g, out, x, at, needs: (g.transpose(tuple(np.argsort(at["axes"]).tolist())),),
    attrs=("axes",), doc="permute axes", template="{{ x[0] }}.transpose({{ a.axes }})"))


DETACH = register(OpDef(
    name="detach", aliases_input=True, kind="view", impl=lambda a: a,
    infer=lambda x: (tuple(x.shape), np.dtype(x.dtype)),
    doc="the same values with no gradient path (a stop-gradient edge)", template="{{ x[0] }}"))


def _broadcast_to_infer(x, shape):
    try:
        ok = np.broadcast_shapes(tuple(x.shape), tuple(shape)) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"cannot broadcast {list(x.shape)} to {list(shape)}")
    return tuple(shape), np.dtype(x.dtype)


BROADCAST_TO = register(OpDef(
    name="broadcast_to", aliases_input=True, kind="view",
    impl=lambda a, shape: np.broadcast_to(a, shape),
    infer=_broadcast_to_infer,
    vjp=lambda g, out, x, at, needs: (g.sum_to(tuple(x[0].shape)),),
    attrs=("shape",), doc="read-only broadcast view; its gradient sums back (sum_to)",
    template="broadcast_to({{ x[0] }}, {{ a.shape }})"))


def _getitem_infer(x, index):
    res = _example(x)[index]
    return tuple(res.shape), np.dtype(x.dtype)


GETITEM = register(OpDef(
    name="getitem", aliases_input=True, kind="view", impl=lambda a, index: a[index],
    infer=_getitem_infer,
    vjp=lambda g, out, x, at, needs: (g.unslice(tuple(x[0].shape), at["index"]),),
    attrs=("index",), doc="basic indexing (ints, slices, None, ...): a view",
    template="{{ x[0] }}[{{ a.index }}]"))


def _unslice_impl(a, shape, index):
    res = np.zeros(shape, dtype=a.dtype)
    res[index] = a
    return res


UNSLICE = register(OpDef(
    name="unslice", kind="other", impl=_unslice_impl,
    infer=lambda x, shape, index: (tuple(shape), np.dtype(x.dtype)),
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


INDEX = register(OpDef(
    name="index", kind="other", impl=lambda a, *arrays, index: a[fill_index(index, arrays)],
    infer=_index_infer, save_inputs=True,
    vjp=lambda g, out, x, at, needs: _no_grads_for_indices(
        g.unindex(tuple(x[0].shape), at["index"], x[1:]), x),
    attrs=("index",),
    doc="integer-array (advanced) indexing: the index arrays are inputs %1, %2, ...; a copy",
    template="{{ x[0] }}[{{ a.index }}]"))


def _unindex_impl(a, *arrays, shape, index):
    res = np.zeros(shape, dtype=a.dtype)
    np.add.at(res, fill_index(index, arrays), a)
    return res


UNINDEX = register(OpDef(
    name="unindex", kind="other", impl=_unindex_impl, save_inputs=True,
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
    attrs=("axis",), doc="join tensors along an existing axis",
    template="concatenate(({{ x | join(', ') }},), axis={{ a.axis }}, out={{ out }})"))

STACK = register(OpDef(
    name="stack", kind="other", impl=lambda *a, axis: np.stack(a, axis=axis),
    infer=lambda *x, axis: (
        tuple(np.stack([_example(v) for v in x], axis=axis).shape),
        np.result_type(*(v.dtype for v in x))),
    vjp=lambda g, out, x, at, needs: _split_vjp(g, x, at["axis"], stacked=True),
    attrs=("axis",), doc="join tensors along a new axis",
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
    attrs=("num_classes", "dtype"),
    doc="integer labels as one-hot rows (no gradient); checks the label range when it runs"))


_SWAP_2D = {"axes": (1, 0)}


class ShapeMethods(OpBase):
    """Tensor methods of the shape ops (see ``OpMethods``)."""

    __slots__ = ()

    # --- shapes --------------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Any:
        """Same elements in ``shape`` (one ``-1`` allowed)."""
        if len(shape) == 1 and not isinstance(shape[0], int | np.integer):
            shape = tuple(shape[0])
        if -1 in shape or math.prod(shape) != math.prod(self.shape):
            shape = resolve_shape("reshape", self, shape)
        if shape == tuple(self.shape):
            return self
        return self._apply(RESHAPE, (self,), {"shape": shape})

    def view(self, shape: Sequence[int]) -> Any:
        """The seed's ``view(&shape)``: same element count, ``-1`` allowed."""
        shape = resolve_shape("view", self, shape if not isinstance(shape, int) else (shape,))
        return self.reshape(shape)

    def broadcast_to(self, shape: Sequence[int]) -> Any:
        """Broadcast to ``shape``."""
        shape = tuple(shape)
        if shape == tuple(self.shape):
            return self
        return self._apply(BROADCAST_TO, (self,), {"shape": shape})

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
