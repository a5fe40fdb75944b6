"""Reductions: sum, mean, max over axes, sum_to (un-broadcast), softmax and log-softmax."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..registry import BatchInfo, OpDef, register
from .batching import axis_batch, example_ndim, with_batch
from .rules import NO_ATTRS, OpBase, pick_alias, reduced_shape, shape_error


def _reduce_infer(x, axis, keepdims):
    return reduced_shape(tuple(x.shape), axis, keepdims), np.dtype(x.dtype)


#: the batching rule of ops whose ``axis`` attribute is normalized axes of the example
_AXIS = axis_batch("axis")


def _accumulate_dtype(dtype):
    """numpy's result dtype of a sum or product: bools and small ints accumulate as int64."""
    return np.add.reduce(np.zeros(1, dtype=dtype)).dtype


def _sum_infer(x, axis, keepdims):
    return reduced_shape(tuple(x.shape), axis, keepdims), _accumulate_dtype(x.dtype)


def _mean_dtype(dtype):
    return np.dtype(dtype) if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _keep_shape(x, axis):
    """``x``'s shape with the reduced ``axis`` (None: all) kept as 1s."""
    return reduced_shape(tuple(x.shape), axis, True)


def _kept(value, x, axis, keepdims):
    """A reduction's output (or gradient) ``value`` with the reduced axes of ``x`` kept as 1s,
    so it broadcasts against ``x`` (a 0-d value broadcasts as it is)."""
    if keepdims or axis is None:
        return value
    return value.reshape(_keep_shape(x, axis))


def _spread(g, x, axis, keepdims):
    """Broadcast a reduction's gradient ``g`` back over the reduced axes of ``x``."""
    return _kept(g, x, axis, keepdims).broadcast_to(tuple(x.shape))


def _count(shape, axis):
    axes = range(len(shape)) if axis is None else axis
    return math.prod(shape[a] for a in axes)


_ONES: dict[tuple[int, str], np.ndarray] = {}


def ones_vector(n: int, dtype: np.dtype) -> np.ndarray:
    """A cached read-only vector of ``n`` ones (the BLAS sums' operands)."""
    key = (n, dtype.char)
    v = _ONES.get(key)
    if v is None:
        if len(_ONES) > 256:
            _ONES.clear()
        v = _ONES[key] = np.ones(n, dtype)
        v.flags.writeable = False
    return v


def _kept_axis(ndim: int, axis: Any) -> int | None:
    """The one axis a reduction over ``axis`` keeps, when it keeps exactly one, not the first."""
    if axis is None or ndim < 2:
        return None
    axes = {a % ndim for a in axis}
    kept = [i for i in range(ndim) if i not in axes]
    return kept[0] if len(kept) == 1 and kept[0] > 0 else None


def _blas_sum(a: np.ndarray, axis: Any) -> np.ndarray | None:
    """The sum of a C-contiguous float32/64 ``a`` over every axis but one (not the first), as
    one or two gemvs with ones vectors (PERF-NOTES rule 5: ``add.reduce`` over these strided
    axes is about 6x slower; BLAS accumulates in the array's dtype as numpy does); None when
    that does not apply. The result has the kept axis only."""
    k = _kept_axis(a.ndim, axis)
    if k is None or a.dtype.char not in "fd" or not a.flags.c_contiguous:
        return None
    p, m = math.prod(a.shape[:k]), a.shape[k]
    q = math.prod(a.shape[k + 1:])
    if q == 1:  # the leading axes only (bias gradients)
        return np.dot(ones_vector(p, a.dtype), a.reshape(p, m))
    inner = np.dot(a.reshape(p * m, q), ones_vector(q, a.dtype)).reshape(p, m)
    return np.dot(ones_vector(p, a.dtype), inner)


def _sum_impl(a, axis, keepdims):
    fast = _blas_sum(a, axis) if type(a) is np.ndarray else None
    if fast is not None:
        return fast.reshape(_keep_shape(a, axis)) if keepdims else fast
    return np.add.reduce(a, axis=axis, keepdims=keepdims)


SUM = register(OpDef(
    name="sum", kind="reduction", impl=_sum_impl, infer=_sum_infer,
    vjp=lambda g, out, x, at, needs: (_spread(g, x[0], at["axis"], at["keepdims"]),),
    attrs=("axis", "keepdims"), batch=_AXIS,
    doc="sum over axes (None: all, giving shape ()); bools and small ints sum as int64; "
        "every axis but one (not the first) of a C-contiguous float array is summed with one "
        "or two BLAS gemvs with ones vectors (eager and compiled call this kernel alike)"))


def _mean_impl(a, axis, keepdims):
    return np.mean(a, axis=axis, keepdims=keepdims)


def _mean_vjp(g, out, x, at, needs):
    n = _count(x[0].shape, at["axis"])
    # an empty reduction: the input has no elements, so neither has its gradient
    return (_spread(g.mul(1.0 / n if n else 0.0), x[0], at["axis"], at["keepdims"]),)


MEAN = register(OpDef(
    name="mean", kind="reduction", impl=_mean_impl,
    infer=lambda x, axis, keepdims: (reduced_shape(tuple(x.shape), axis, keepdims),
                                     _mean_dtype(x.dtype)),
    vjp=_mean_vjp, attrs=("axis", "keepdims"), batch=_AXIS,
    doc="mean over axes (None: all); over no elements it is NaN, as in numpy and PyTorch",
    template="mean({{ x[0] }}, axis={{ a.axis }}, keepdims={{ a.keepdims }}, out={{ out }})"))


def _ufunc_reduce(ufunc, a, axis, keepdims):
    return ufunc.reduce(a, axis=axis, keepdims=keepdims)


def _max_vjp(g, out, x, at, needs):
    # the gradient goes to the elements equal to the result, shared evenly between ties; a
    # NaN result came from the NaNs, so they share it (PyTorch's max(): the NaN gets it)
    a, axis, keepdims = x[0], at["axis"], at["keepdims"]
    top = _kept(out, a, axis, keepdims)
    hits = top.isnan().select(a.isnan(), a.eq(top)).astype(g.dtype)
    share = hits.div(hits.sum(axis=axis, keepdims=True))
    return (_spread(g, a, axis, keepdims).mul(share),)


def _extreme(name: str, ufunc: np.ufunc, word: str) -> OpDef:
    """``max`` or ``min`` over axes: the ufunc's reduce, ``_max_vjp`` for both."""
    return register(OpDef(
        name=name, kind="reduction", impl=functools.partial(_ufunc_reduce, ufunc),
        infer=_reduce_infer, vjp=_max_vjp, save_inputs=True, save_output=True,
        attrs=("axis", "keepdims"), batch=_AXIS,
        doc=f"{word} over axes (NaN propagates); ties share the gradient evenly, a NaN "
            f"result's gradient goes to the NaNs",
        template=f"{ufunc.__name__}.reduce({{{{ x[0] }}}}, axis={{{{ a.axis }}}}, "
                 f"keepdims={{{{ a.keepdims }}}}, out={{{{ out }}}})"))


MAX = _extreme("max", np.maximum, "maximum")
MIN = _extreme("min", np.minimum, "minimum")


def _arg_infer(x, axis, keepdims):
    if axis is None:
        shape = (1,) * len(x.shape) if keepdims else ()
    else:
        shape = reduced_shape(tuple(x.shape), (axis,), keepdims)
    return shape, np.dtype(np.intp)


def _arg_impl(fn, a, axis, keepdims):
    return fn(a, axis=axis, keepdims=keepdims)


def _arg_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
    """Along an axis: that axis moved by one; over all (the flattened example): over each
    example flattened."""
    (x,), axis = xs, attrs["axis"]
    if axis is not None:
        return x._apply(op, xs, {**attrs, "axis": axis + 1})
    ndim = example_ndim(x, True)
    rows = x.reshape((x.shape[0], -1))
    flat = rows._apply(op, (rows,), {"axis": 1, "keepdims": False})
    return flat.reshape((x.shape[0],) + (1,) * ndim) if attrs["keepdims"] else flat


def _arg_extreme(fn: Callable, word: str) -> OpDef:
    """``argmax`` or ``argmin`` along one axis (no gradient)."""
    return register(OpDef(
        name=fn.__name__, kind="reduction", impl=functools.partial(_arg_impl, fn),
        infer=_arg_infer, attrs=("axis", "keepdims"), batch=_arg_batch,
        doc=f"index of the {word} along one axis (None: of the flattened values); the first "
            f"one on ties; a NaN counts as the {word} (int64, no gradient)",
        template=f"np.{fn.__name__}({{{{ x[0] }}}}, axis={{{{ a.axis }}}}, "
                 f"keepdims={{{{ a.keepdims }}}}, out={{{{ out }}}})"))


ARGMAX = _arg_extreme(np.argmax, "maximum")
ARGMIN = _arg_extreme(np.argmin, "minimum")


def _var_infer(x, axis, correction, keepdims):
    return reduced_shape(tuple(x.shape), axis, keepdims), _mean_dtype(x.dtype)


def _var_impl(a, axis, correction, keepdims):
    return np.var(a, axis=axis, ddof=correction, keepdims=keepdims)


def _std_impl(a, axis, correction, keepdims):
    return np.std(a, axis=axis, ddof=correction, keepdims=keepdims)


def _var_grad(g, a, axis, correction, keepdims):
    """d var / d x = 2 (x - mean) / (N - correction), with ``g`` of the reduced shape. Where
    N - correction <= 0 the variance divides by 0 (inf or NaN, as numpy and PyTorch): so does
    its gradient."""
    dof = _count(a.shape, axis) - correction
    scale = 2.0 / dof if dof > 0 else math.inf
    centred = a.sub(a.mean(axis=axis, keepdims=True))
    return _spread(g, a, axis, keepdims).mul(centred).mul(scale)


VAR = register(OpDef(
    name="var", kind="reduction", impl=_var_impl, infer=_var_infer,
    vjp=lambda g, out, x, at, needs: (
        _var_grad(g, x[0], at["axis"], at["correction"], at["keepdims"]),),
    save_inputs=True, attrs=("axis", "correction", "keepdims"), batch=_AXIS,
    doc="variance over axes: sum (x - mean)^2 / (N - correction) (PyTorch's correction, "
        "numpy's ddof)",
    template="np.var({{ x[0] }}, axis={{ a.axis }}, ddof={{ a.correction }}, "
             "keepdims={{ a.keepdims }}, out={{ out }})"))


def _std_vjp(g, out, x, at, needs):
    # d sqrt(v) = d v / (2 sqrt(v)); 0 where the deviation is 0 (PyTorch's), not 0 / 0
    gv = out.eq(0.0).select(0.0, g.div(out.mul(2.0)))
    return (_var_grad(gv, x[0], at["axis"], at["correction"], at["keepdims"]),)


STD = register(OpDef(
    name="std", kind="reduction", impl=_std_impl, infer=_var_infer, vjp=_std_vjp,
    save_inputs=True, save_output=True, attrs=("axis", "correction", "keepdims"), batch=_AXIS,
    doc="standard deviation over axes: sqrt(var); its gradient is 0 where it is 0",
    template="np.std({{ x[0] }}, axis={{ a.axis }}, ddof={{ a.correction }}, "
             "keepdims={{ a.keepdims }}, out={{ out }})"))


def _prod_impl(a, axis, keepdims):
    return np.prod(a, axis=axis, keepdims=keepdims)


def _prod_vjp(g, out, x, at, needs):
    # d prod / d x_j is the product of the others. Where x_j != 0 that is out / x_j (0 when
    # another element is 0, since out is then 0, with the right derivative through out).
    # Where x_j == 0 it is P * Z_j: P the product of the nonzero elements, Z_j the product of
    # the other zeros: 1 if x_j is its slice's only zero, the other zero itself if there are
    # two (0, but its derivative is 1), else 0. So second derivatives are exact too.
    a, axis, keepdims = x[0], at["axis"], at["keepdims"]
    top = _kept(out, a, axis, keepdims)
    zero = a.eq(0.0)
    safe = zero.select(1.0, a)
    zeros = zero.astype(g.dtype).sum(axis=axis, keepdims=True)
    other_zero = zero.select(a, 0.0).sum(axis=axis, keepdims=True).sub(a)
    z = zeros.eq(1.0).select(1.0, zeros.eq(2.0).select(other_zero, 0.0))
    others = zero.select(safe.prod(dim=axis, keepdim=True).mul(z), top.div(safe))
    return (_spread(g, a, axis, keepdims).mul(others),)


PROD = register(OpDef(
    name="prod", kind="reduction", impl=_prod_impl, infer=lambda x, axis, keepdims: (
        reduced_shape(tuple(x.shape), axis, keepdims), _accumulate_dtype(x.dtype)),
    vjp=_prod_vjp, save_inputs=True, save_output=True, attrs=("axis", "keepdims"), batch=_AXIS,
    doc="product over axes (None: all); the gradient is the product of the other elements, "
        "exact with zeros in the input",
    template="np.prod({{ x[0] }}, axis={{ a.axis }}, keepdims={{ a.keepdims }}, out={{ out }})"))


def _float_reduce_infer(x, axis, keepdims):
    return reduced_shape(tuple(x.shape), axis, keepdims), _mean_dtype(x.dtype)


def _logsumexp_impl(a, axis, keepdims):
    a = a.astype(_mean_dtype(a.dtype), copy=False)
    top = np.maximum.reduce(a, axis=axis, keepdims=True, initial=-np.inf)
    top = np.where(np.isfinite(top), top, 0)  # all -inf (or an inf): shift by 0, not by inf
    with np.errstate(divide="ignore"):
        out = np.log(np.add.reduce(np.exp(a - top), axis=axis, keepdims=True)) + top
    if not keepdims:
        out = out.reshape(reduced_shape(a.shape, axis, False))
    return out


def _logsumexp_vjp(g, out, x, at, needs):
    # d/dx log sum e^x = e^(x - out) (the softmax)
    a, axis, keepdims = x[0], at["axis"], at["keepdims"]
    return (_spread(g, a, axis, keepdims).mul(a.sub(_kept(out, a, axis, keepdims)).exp()),)


LOGSUMEXP = register(OpDef(
    name="logsumexp", kind="reduction", impl=_logsumexp_impl, infer=_float_reduce_infer,
    vjp=_logsumexp_vjp, save_inputs=True, save_output=True, attrs=("axis", "keepdims"), batch=_AXIS,
    doc="log(sum(exp(x))) over axes, shifted by the maximum for stability (-inf over no "
        "elements)"))


def _any_impl(a, axis, keepdims):
    return np.any(a, axis=axis, keepdims=keepdims)


def _all_impl(a, axis, keepdims):
    return np.all(a, axis=axis, keepdims=keepdims)


def _bool_infer(x, axis, keepdims):
    return reduced_shape(tuple(x.shape), axis, keepdims), np.dtype(np.bool_)


ANY = register(OpDef(
    name="any", kind="reduction", impl=_any_impl, infer=_bool_infer, attrs=("axis", "keepdims"),
    batch=_AXIS,
    doc="whether any element is nonzero over axes (bool, no gradient)",
    template="np.any({{ x[0] }}, axis={{ a.axis }}, keepdims={{ a.keepdims }}, out={{ out }})"))
ALL = register(OpDef(
    name="all", kind="reduction", impl=_all_impl, infer=_bool_infer, attrs=("axis", "keepdims"),
    batch=_AXIS,
    doc="whether every element is nonzero over axes (bool, no gradient)",
    template="np.all({{ x[0] }}, axis={{ a.axis }}, keepdims={{ a.keepdims }}, out={{ out }})"))


def _cumsum_impl(a, axis):
    return np.cumsum(a, axis=axis)


def _reverse(v, axis):
    return v.getitem((slice(None),) * axis + (slice(None, None, -1),))


CUMSUM = register(OpDef(
    name="cumsum", kind="other", impl=_cumsum_impl,
    infer=lambda x, axis: (tuple(x.shape), _accumulate_dtype(x.dtype)),
    # the gradient of a running sum is the running sum from the end
    vjp=lambda g, out, x, at, needs: (
        _reverse(_reverse(g, at["axis"]).cumsum(at["axis"]), at["axis"]),),
    attrs=("axis",), batch=_AXIS, doc="running sum along one axis (bools and small ints as int64)",
    template="np.cumsum({{ x[0] }}, axis={{ a.axis }}, out={{ out }})"))


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
        fast = _blas_sum(a, tuple(range(lead))) if a.ndim == lead + 1 else None
        return fast if fast is not None else np.add.reduce(a, axis=tuple(range(lead)))
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and a.shape[lead + i] != 1)
    fast = _blas_sum(a, axes) if axes else None
    if fast is not None:
        return fast.reshape(shape)
    if axes:
        a = np.add.reduce(a, axis=axes, keepdims=True)
    return a.reshape(shape)


def _sum_to_infer(x, shape):
    if not _sums_to(tuple(x.shape), tuple(shape)):
        raise ValueError(f"cannot sum {list(x.shape)} to {list(shape)}")
    return tuple(shape), np.dtype(x.dtype)


def _sum_to_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict, info: BatchInfo) -> Any:
    """The example's extra leading axes summed first, so the batch axis stays."""
    (x,), shape = xs, tuple(attrs["shape"])
    lead = example_ndim(x, True) - len(shape)
    if lead:
        x = x.sum(axis=tuple(range(1, lead + 1)))
    return x._apply(op, (x,), {"shape": (x.shape[0], *shape)})


SUM_TO = register(OpDef(
    name="sum_to", kind="reduction", impl=_sum_to_impl, infer=_sum_to_infer,
    batch=_sum_to_batch,
    vjp=lambda g, out, x, at, needs: (g.broadcast_to(tuple(x[0].shape)),),
    attrs=("shape",), doc="sum over the axes that broadcasting to the input's shape added"))


def _softmax_impl(a, axis):
    e = np.asarray(np.exp(a - np.maximum.reduce(a, axis=axis, keepdims=True)))  # 0-d: array
    return np.true_divide(e, np.add.reduce(e, axis=axis, keepdims=True), out=e)


def _softmax_vjp(g, out, x, at, needs):
    gs = g.mul(out)
    return (gs.sub(out.mul(gs.sum(axis=at["axis"], keepdims=True))),)


def _same_infer(x, **attrs):
    dtype = np.dtype(x.dtype)
    return tuple(x.shape), dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


SOFTMAX = register(OpDef(
    name="softmax", kind="other", impl=_softmax_impl, infer=_same_infer, vjp=_softmax_vjp,
    save_output=True, attrs=("axis",),
    batch=_AXIS, doc="softmax along one axis, max-shifted for stability",
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
    save_output=True, attrs=("axis",),
    batch=_AXIS, doc="log of softmax along one axis, computed stably",
    template="subtract((_s := subtract({{ x[0] }}, maximum.reduce({{ x[0] }}, axis={{ a.axis }}, "
             "keepdims=True), out={{ out }})), log(add.reduce(exp(_s), axis={{ a.axis }}, "
             "keepdims=True)), out={{ out }})"))


def _cross_entropy_check(logits_shape, targets_shape):
    """The one shape rule of ``cross_entropy``: the kernel applies it too, so an eager call
    refuses what compile refuses (numpy would broadcast ``[N, 1]`` targets silently)."""
    if len(logits_shape) != 2 or tuple(logits_shape) != tuple(targets_shape):
        raise ValueError(f"needs logits and targets of one shape [N, C], got "
                         f"{list(logits_shape)} and {list(targets_shape)}")


def _cross_entropy_impl(logits, targets):
    _cross_entropy_check(logits.shape, targets.shape)
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
    _cross_entropy_check(logits.shape, targets.shape)
    return (logits.shape[0],), np.result_type(logits.dtype, targets.dtype)


def _cross_entropy_batch(op: OpDef, xs: tuple, batched: tuple, attrs: dict,
                         info: BatchInfo) -> Any:
    """The batch's rows as one [B * N, C] call."""
    size = info.size
    shape = next(x.shape[1:] for x, b in zip(xs, batched, strict=True) if b)
    rows = [with_batch(x, b, size).reshape((-1, shape[1]))
            for x, b in zip(xs, batched, strict=True)]
    return rows[0]._apply(op, tuple(rows), attrs).reshape((size, shape[0]))


CROSS_ENTROPY = register(OpDef(
    name="cross_entropy", kind="other", impl=_cross_entropy_impl, infer=_cross_entropy_infer,
    batch=_cross_entropy_batch,
    vjp=_cross_entropy_vjp, save_inputs=True,
    doc="per-row cross-entropy -sum_j t_ij log_softmax(z)_ij of logits [N, C] and target "
        "distributions [N, C], computed stably",
    # the kernel's numpy calls, reusing one scratch array (_s) for the [N, C] steps
    template="negative(add.reduce(multiply(subtract((_s := subtract({{ x[0] }}, maximum.reduce("
             "{{ x[0] }}, axis=1, keepdims=True))), log(add.reduce(exp(_s), axis=1, "
             "keepdims=True)), out=_s), {{ x[1] }}), axis=1), out={{ out }})"))


_ALL_AXES = {"axis": None, "keepdims": False}


class ReductionMethods(OpBase):
    """Tensor methods of the reductions (see ``OpMethods``).

    Axes are given as ``axis=``/``keepdims=`` (numpy's, the seed's) or ``dim=``/``keepdim=``
    (PyTorch's): an int, a tuple of ints, or None for every axis; an empty tuple also means
    every axis, as in PyTorch (``any``/``all`` excepted: there, as in PyTorch, it reduces
    nothing). ``max``/``min`` return the values only (the seed's API): PyTorch's
    ``max(dim)`` pair is ``amax(dim)`` and ``argmax(dim)``.
    """

    __slots__ = ()

    def _reduction(self, op: str, axis: Any, dim: Any, keepdims: Any, keepdim: Any,
                   empty_is_all: bool = True) -> dict:
        """The ``axis``/``keepdims`` attrs of a reduction from either spelling."""
        axis = pick_alias(op, "axis", axis, "dim", dim, None)
        keep = pick_alias(op, "keepdims", keepdims, "keepdim", keepdim, False)
        if empty_is_all and isinstance(axis, tuple | list) and not axis:
            axis = None
        return {"axis": self._axes(op, axis), "keepdims": bool(keep)}

    def _one_axis(self, op: str, axis: Any, dim: Any, default: Any = None) -> int | None:
        """One axis (an int) from ``axis=`` or ``dim=``; None for a 0-d value."""
        axis = pick_alias(op, "axis", axis, "dim", dim, default)
        if axis is None:
            raise shape_error(op, "needs dim= (an int)", self)
        if not isinstance(axis, int | np.integer):
            raise shape_error(op, f"dim must be one int, got {axis!r}", self)
        axes = self._axes(op, int(axis))
        return axes[0] if axes else None

    def _nonempty(self, op: str, axis: tuple[int, ...] | None) -> None:
        reduced = range(len(self.shape)) if axis is None else axis
        if any(self.shape[a] == 0 for a in reduced):
            raise shape_error(op, "cannot reduce over an axis of length 0 (it has no "
                                  "identity)", self)

    # --- reductions ----------------------------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None,
            keepdim: bool | None = None) -> Any:
        """Sum over ``axis`` (int, tuple or None for all)."""
        if axis is None and dim is None and not keepdims and not keepdim:
            return self._apply(SUM, (self,), _ALL_AXES)
        return self._apply(SUM, (self,), self._reduction("sum", axis, dim, keepdims, keepdim))

    def sum_axis(self, axis: int, keepdims: bool = False) -> Any:
        """Sum over one axis: ``[[1,2],[3,4]].sum_axis(0) == [4,6]``."""
        return self._apply(SUM, (self,),
                           {"axis": self._axes("sum", axis), "keepdims": bool(keepdims)})

    def mean(self, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None,
             keepdim: bool | None = None) -> Any:
        """Mean over ``axis`` (None: all)."""
        if axis is None and dim is None and not keepdims and not keepdim:
            return self._apply(MEAN, (self,), _ALL_AXES)
        return self._apply(MEAN, (self,), self._reduction("mean", axis, dim, keepdims, keepdim))

    def mean_axis(self, axis: int, keepdims: bool = False) -> Any:
        """Mean over one axis."""
        return self.mean(axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None,
            keepdim: bool | None = None) -> Any:
        """Maximum over ``axis`` (None: all): the values only (``argmax`` gives the indices)."""
        attrs = self._reduction("max", axis, dim, keepdims, keepdim)
        self._nonempty("max", attrs["axis"])
        return self._apply(MAX, (self,), attrs)

    def max_axis(self, axis: int, keepdims: bool = False) -> Any:
        """Maximum over one axis."""
        return self.max(axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None,
            keepdim: bool | None = None) -> Any:
        """Minimum over ``axis`` (None: all): the values only (``argmin`` gives the indices)."""
        attrs = self._reduction("min", axis, dim, keepdims, keepdim)
        self._nonempty("min", attrs["axis"])
        return self._apply(MIN, (self,), attrs)

    def amax(self, dim: Any = None, keepdim: bool | None = None, *, axis: Any = None,
             keepdims: bool | None = None) -> Any:
        """PyTorch's ``amax``: the maximum over ``dim`` (int, tuple, None or () for all);
        ties share the gradient evenly."""
        attrs = self._reduction("amax", axis, dim, keepdims, keepdim)
        self._nonempty("amax", attrs["axis"])
        return self._apply(MAX, (self,), attrs)

    def amin(self, dim: Any = None, keepdim: bool | None = None, *, axis: Any = None,
             keepdims: bool | None = None) -> Any:
        """PyTorch's ``amin``: the minimum over ``dim``; ties share the gradient evenly."""
        attrs = self._reduction("amin", axis, dim, keepdims, keepdim)
        self._nonempty("amin", attrs["axis"])
        return self._apply(MIN, (self,), attrs)

    def _arg(self, op: Any, name: str, dim: Any, keepdim: Any, axis: Any, keepdims: Any) -> Any:
        keep = bool(pick_alias(name, "keepdims", keepdims, "keepdim", keepdim, False))
        if pick_alias(name, "axis", axis, "dim", dim, None) is None:
            a = None
        else:
            a = self._one_axis(name, axis, dim)
        self._nonempty(name, None if a is None else (a,))
        return self._apply(op, (self,), {"axis": a, "keepdims": keep})

    def argmax(self, dim: int | None = None, keepdim: bool | None = None, *, axis: Any = None,
               keepdims: bool | None = None) -> Any:
        """Index of the maximum along ``dim`` (None: in the flattened values), int64; the
        first on ties, a NaN counts as the maximum (as PyTorch and numpy)."""
        return self._arg(ARGMAX, "argmax", dim, keepdim, axis, keepdims)

    def argmin(self, dim: int | None = None, keepdim: bool | None = None, *, axis: Any = None,
               keepdims: bool | None = None) -> Any:
        """Index of the minimum along ``dim`` (None: in the flattened values), int64."""
        return self._arg(ARGMIN, "argmin", dim, keepdim, axis, keepdims)

    def _var(self, op: Any, name: str, dim: Any, unbiased: Any, keepdim: Any, correction: Any,
             axis: Any, keepdims: Any) -> Any:
        if unbiased is not None and correction is not None:
            raise shape_error(name, "pass correction= or unbiased=, not both", self)
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        elif not isinstance(correction, int | float | np.integer | np.floating) \
                or isinstance(correction, bool):
            raise shape_error(name, f"correction must be a number, got {correction!r}", self)
        attrs = self._reduction(name, axis, dim, keepdims, keepdim)
        attrs["correction"] = correction if isinstance(correction, int) else (
            int(correction) if float(correction).is_integer() else float(correction))
        return self._apply(op, (self,), attrs)

    def var(self, dim: Any = None, unbiased: bool | None = None, keepdim: bool | None = None,
            *, correction: float | None = None, axis: Any = None,
            keepdims: bool | None = None) -> Any:
        """Variance over ``dim`` (None: all): ``sum (x - mean)^2 / (N - correction)``,
        ``correction=1`` by default (``unbiased=False`` is ``correction=0``)."""
        return self._var(VAR, "var", dim, unbiased, keepdim, correction, axis, keepdims)

    def std(self, dim: Any = None, unbiased: bool | None = None, keepdim: bool | None = None,
            *, correction: float | None = None, axis: Any = None,
            keepdims: bool | None = None) -> Any:
        """Standard deviation over ``dim``: ``sqrt(var)`` with the same arguments."""
        return self._var(STD, "std", dim, unbiased, keepdim, correction, axis, keepdims)

    def prod(self, dim: Any = None, keepdim: bool | None = None, *, axis: Any = None,
             keepdims: bool | None = None) -> Any:
        """Product over ``dim`` (None: all); its gradient is exact with zeros in the input."""
        return self._apply(PROD, (self,), self._reduction("prod", axis, dim, keepdims, keepdim))

    def logsumexp(self, dim: Any = None, keepdim: bool | None = None, *, axis: Any = None,
                  keepdims: bool | None = None) -> Any:
        """``log(sum(exp(self)))`` over ``dim`` (None: all), computed stably."""
        return self._apply(LOGSUMEXP, (self,),
                           self._reduction("logsumexp", axis, dim, keepdims, keepdim))

    def any(self, dim: Any = None, keepdim: bool | None = None, *, axis: Any = None,
            keepdims: bool | None = None) -> Any:
        """Whether any element is nonzero over ``dim`` (None: all); bool."""
        return self._apply(ANY, (self,), self._reduction("any", axis, dim, keepdims, keepdim,
                                                         empty_is_all=False))

    def all(self, dim: Any = None, keepdim: bool | None = None, *, axis: Any = None,
            keepdims: bool | None = None) -> Any:
        """Whether every element is nonzero over ``dim`` (None: all); bool."""
        return self._apply(ALL, (self,), self._reduction("all", axis, dim, keepdims, keepdim,
                                                         empty_is_all=False))

    def cumsum(self, dim: int | None = None, *, axis: int | None = None) -> Any:
        """Running sum along ``dim`` (required, as in PyTorch)."""
        a = self._one_axis("cumsum", axis, dim)
        if a is None:  # a 0-d value: its only element
            return self.reshape(1).cumsum(0).reshape(())
        return self._apply(CUMSUM, (self,), {"axis": a})

    def sum_to(self, shape: Sequence[int]) -> Any:
        """Sum over the axes that broadcasting ``shape`` to this shape would add."""
        shape = tuple(shape)
        if shape == tuple(self.shape):
            return self
        return self._apply(SUM_TO, (self,), {"shape": shape})

    def softmax(self, axis: int | None = None, dim: int | None = None) -> Any:
        """Softmax along ``axis`` (or ``dim``; default -1), numerically stable."""
        return self._apply(SOFTMAX, (self,),
                           {"axis": self._one_axis("softmax", axis, dim, default=-1)})

    def log_softmax(self, axis: int | None = None, dim: int | None = None) -> Any:
        """Log-softmax along ``axis`` (or ``dim``; default -1), numerically stable."""
        return self._apply(LOG_SOFTMAX, (self,),
                           {"axis": self._one_axis("log_softmax", axis, dim, default=-1)})

    def cross_entropy_rows(self, targets: Any) -> Any:
        """Per-row cross-entropy of these logits ``[N, C]`` against target distributions."""
        return self._apply(CROSS_ENTROPY, (self, self._coerce(targets)), NO_ATTRS)
