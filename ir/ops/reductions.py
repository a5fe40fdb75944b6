"""Reductions: sum, mean, max over axes, sum_to (un-broadcast), softmax and log-softmax."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..registry import OpDef, register
from .rules import NO_ATTRS, OpBase, reduced_shape, shape_error


def _reduce_infer(x, axis, keepdims):
    return reduced_shape(tuple(x.shape), axis, keepdims), np.dtype(x.dtype)


def _mean_dtype(dtype):
    return np.dtype(dtype) if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _spread(g, x, axis, keepdims):
    """Broadcast a reduction's gradient ``g`` back over the reduced axes of ``x``."""
    if not keepdims and axis is not None:  # a 0-d gradient broadcasts as it is
        g = g.reshape(reduced_shape(tuple(x.shape), axis, True))
    return g.broadcast_to(tuple(x.shape))


def _count(shape, axis):
    axes = range(len(shape)) if axis is None else axis
    return math.prod(shape[a] for a in axes)


def _sum_impl(a, axis, keepdims):
    return np.add.reduce(a, axis=axis, keepdims=keepdims)


SUM = register(OpDef(
    name="sum", kind="reduction", impl=_sum_impl, infer=_reduce_infer,
    vjp=lambda g, out, x, at, needs: (_spread(g, x[0], at["axis"], at["keepdims"]),),
    attrs=("axis", "keepdims"), doc="sum over axes (None: all, giving shape ())",
    template="add.reduce({{ x[0] }}, axis={{ a.axis }}, keepdims={{ a.keepdims }}, "
             "out={{ out }})"))


def _mean_impl(a, axis, keepdims):
    return np.mean(a, axis=axis, keepdims=keepdims)


MEAN = register(OpDef(
    name="mean", kind="reduction", impl=_mean_impl,
    infer=lambda x, axis, keepdims: (reduced_shape(tuple(x.shape), axis, keepdims),
                                     _mean_dtype(x.dtype)),
    vjp=lambda g, out, x, at, needs: (
        _spread(g.mul(1.0 / _count(x[0].shape, at["axis"])), x[0], at["axis"], at["keepdims"]),),
    attrs=("axis", "keepdims"), doc="mean over axes (None: all)",
    template="mean({{ x[0] }}, axis={{ a.axis }}, keepdims={{ a.keepdims }}, out={{ out }})"))


def _max_impl(a, axis, keepdims):
    return np.maximum.reduce(a, axis=axis, keepdims=keepdims)


def _max_vjp(g, out, x, at, needs):
    a, axis, keepdims = x[0], at["axis"], at["keepdims"]
    kshape = reduced_shape(tuple(a.shape), axis, True)
    top = out if keepdims else out.reshape(kshape)
    hits = a.eq(top).astype(g.dtype)
    share = hits.div(hits.sum(axis=axis, keepdims=True))
    return (_spread(g, a, axis, keepdims).mul(share),)


MAX = register(OpDef(
    name="max", kind="reduction", impl=_max_impl, infer=_reduce_infer, vjp=_max_vjp,
    save_inputs=True, save_output=True, attrs=("axis", "keepdims"),
    doc="maximum over axes; tied maxima share the gradient evenly",
    template="maximum.reduce({{ x[0] }}, axis={{ a.axis }}, keepdims={{ a.keepdims }}, "
             "out={{ out }})"))


def _sums_to(from_shape: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether broadcasting ``shape`` gives ``from_shape`` (so summing back is defined)."""
    lead = len(from_shape) - len(shape)
    tail = from_shape[lead:]
    return lead >= 0 and all(s == d or s == 1 for s, d in zip(shape, tail, strict=True))


def _sum_to_impl(a, shape):
    if not _sums_to(a.shape, shape):
        raise ValueError(f"cannot sum {list(a.shape)} to {list(shape)}")
    lead = a.ndim - len(shape)
    if a.shape[lead:] == shape:  # only leading axes (bias gradients): one plain reduce
        return np.add.reduce(a, axis=tuple(range(lead)))
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and a.shape[lead + i] != 1)
    if axes:
        a = np.add.reduce(a, axis=axes, keepdims=True)
    return a.reshape(shape)


def _sum_to_infer(x, shape):
    if not _sums_to(tuple(x.shape), tuple(shape)):
        raise ValueError(f"cannot sum {list(x.shape)} to {list(shape)}")
    return tuple(shape), np.dtype(x.dtype)


SUM_TO = register(OpDef(
    name="sum_to", kind="reduction", impl=_sum_to_impl, infer=_sum_to_infer,
    vjp=lambda g, out, x, at, needs: (g.broadcast_to(tuple(x[0].shape)),),
    attrs=("shape",), doc="sum over the axes that broadcasting to the input's shape added"))


def _softmax_impl(a, axis):
    e = np.exp(a - np.maximum.reduce(a, axis=axis, keepdims=True))
    return np.true_divide(e, np.add.reduce(e, axis=axis, keepdims=True), out=e)


def _softmax_vjp(g, out, x, at, needs):
    gs = g.mul(out)
    return (gs.sub(out.mul(gs.sum(axis=at["axis"], keepdims=True))),)


def _same_infer(x, **attrs):
    dtype = np.dtype(x.dtype)
    return tuple(x.shape), dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


SOFTMAX = register(OpDef(
    name="softmax", kind="other", impl=_softmax_impl, infer=_same_infer, vjp=_softmax_vjp,
    save_output=True, attrs=("axis",), doc="softmax along one axis, max-shifted for stability",
    # the same numpy calls as the kernel, written into the planned buffer
    template="true_divide((_e := exp(subtract({{ x[0] }}, maximum.reduce({{ x[0] }}, "
             "axis={{ a.axis }}, keepdims=True), out={{ out }}), out={{ out }})), "
             "add.reduce(_e, axis={{ a.axis }}, keepdims=True), out={{ out }})"))


def _log_softmax_impl(a, axis):
    shifted = a - np.maximum.reduce(a, axis=axis, keepdims=True)
    return shifted - np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))


LOG_SOFTMAX = register(OpDef(
    name="log_softmax", kind="other", impl=_log_softmax_impl, infer=_same_infer,
    vjp=lambda g, out, x, at, needs: (
        g.sub(out.exp().mul(g.sum(axis=at["axis"], keepdims=True))),),
    save_output=True, attrs=("axis",), doc="log of softmax along one axis, computed stably",
    template="subtract((_s := subtract({{ x[0] }}, maximum.reduce({{ x[0] }}, axis={{ a.axis }}, "
             "keepdims=True), out={{ out }})), log(add.reduce(exp(_s), axis={{ a.axis }}, "
             "keepdims=True)), out={{ out }})"))


def _cross_entropy_impl(logits, targets):
    shifted = logits - np.maximum.reduce(logits, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.add.reduce(np.exp(shifted), axis=1, keepdims=True))
    return np.negative(np.add.reduce(log_probs * targets, axis=1))


def _cross_entropy_vjp(g, out, x, at, needs):
    # loss_i = -sum_j t_ij log_softmax(z)_ij:
    #   d/dz_ij = softmax(z)_ij * sum_k t_ik - t_ij,   d/dt_ij = -log_softmax(z)_ij
    logits, targets = x
    g_col = g.reshape((g.shape[0], 1))
    d_logits = d_targets = None
    if needs[0]:
        mass = targets.sum(axis=1, keepdims=True)
        d_logits = logits.softmax(1).mul(mass).sub(targets).mul(g_col)
    if needs[1]:
        d_targets = logits.log_softmax(1).neg().mul(g_col)
    return d_logits, d_targets


def _cross_entropy_infer(logits, targets):
    if len(logits.shape) != 2 or tuple(logits.shape) != tuple(targets.shape):
        raise ValueError(f"needs logits and targets of one shape [N, C], got "
                         f"{list(logits.shape)} and {list(targets.shape)}")
    return (logits.shape[0],), np.result_type(logits.dtype, targets.dtype)


CROSS_ENTROPY = register(OpDef(
    name="cross_entropy", kind="other", impl=_cross_entropy_impl, infer=_cross_entropy_infer,
    vjp=_cross_entropy_vjp, save_inputs=True,
    doc="per-row cross-entropy -sum_j t_ij log_softmax(z)_ij of logits [N, C] and target "
        "distributions [N, C], computed stably",
    # the kernel's numpy calls, reusing one scratch array (_s) for the [N, C] steps
    template="negative(add.reduce(multiply(subtract((_s := subtract({{ x[0] }}, maximum.reduce("
             "{{ x[0] }}, axis=1, keepdims=True))), log(add.reduce(exp(_s), axis=1, "
             "keepdims=True)), out=_s), {{ x[1] }}), axis=1), out={{ out }})"))


_ALL_AXES = {"axis": None, "keepdims": False}


class ReductionMethods(OpBase):
    """Tensor methods of the reductions (see ``OpMethods``)."""

    __slots__ = ()

    # --- reductions ----------------------------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> Any:
        """Sum over ``axis`` (int, tuple or None for all)."""
        if axis is None and not keepdims:
            return self._apply(SUM, (self,), _ALL_AXES)
        return self._apply(SUM, (self,),
                           {"axis": self._axes("sum", axis), "keepdims": bool(keepdims)})

    def sum_axis(self, axis: int, keepdims: bool = False) -> Any:
        """Sum over one axis: ``[[1,2],[3,4]].sum_axis(0) == [4,6]``."""
        return self._apply(SUM, (self,),
                           {"axis": self._axes("sum", axis), "keepdims": bool(keepdims)})

    def mean(self, axis: Any = None, keepdims: bool = False) -> Any:
        """Mean over ``axis`` (None: all)."""
        if axis is None and not keepdims:
            return self._apply(MEAN, (self,), _ALL_AXES)
        return self._apply(MEAN, (self,),
                           {"axis": self._axes("mean", axis), "keepdims": bool(keepdims)})

    def mean_axis(self, axis: int, keepdims: bool = False) -> Any:
        """Mean over one axis."""
        return self.mean(axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Any:
        """Maximum over ``axis`` (None: all)."""
        if 0 in tuple(self.shape):
            raise shape_error("max", "cannot reduce an empty tensor", self)
        return self._apply(MAX, (self,),
                           {"axis": self._axes("max", axis), "keepdims": bool(keepdims)})

    def max_axis(self, axis: int, keepdims: bool = False) -> Any:
        """Maximum over one axis."""
        return self.max(axis, keepdims)

    def sum_to(self, shape: Sequence[int]) -> Any:
        """Sum over the axes that broadcasting ``shape`` to this shape would add."""
        shape = tuple(shape)
        if shape == tuple(self.shape):
            return self
        return self._apply(SUM_TO, (self,), {"shape": shape})

    def softmax(self, axis: int = -1) -> Any:
        """Softmax along ``axis`` (numerically stable)."""
        (a,) = self._axes("softmax", axis)
        return self._apply(SOFTMAX, (self,), {"axis": a})

    def log_softmax(self, axis: int = -1) -> Any:
        """Log-softmax along ``axis`` (numerically stable)."""
        (a,) = self._axes("log_softmax", axis)
        return self._apply(LOG_SOFTMAX, (self,), {"axis": a})

    def cross_entropy_rows(self, targets: Any) -> Any:
        """Per-row cross-entropy of these logits ``[N, C]`` against target distributions."""
        return self._apply(CROSS_ENTROPY, (self, self._coerce(targets)), NO_ATTRS)
