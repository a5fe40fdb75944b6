"""Loss functions under PyTorch's names, arguments, defaults and formulas.

Class-index targets stay ordinary values (graph inputs when compiled): ``class_targets`` turns
them into one-hot rows (zero rows where ignored; its kernel checks the range when it runs) and
cross-entropy reuses the fused, stable ``cross_entropy`` op on the resulting target
distribution, so the common ``[N, C]`` case is one log-softmax pass with an exact gradient
``softmax * sum(target) - target``. Mean reductions of weighted or ignoring losses divide by
the summed weight of the targets counted, exactly as PyTorch.

``size_average`` and ``reduce`` are PyTorch's deprecated spellings of ``reduction``, accepted
in PyTorch's positions so that positional calls mean what they mean there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DTypeError, ShapeError, describe, with_location
from ...ir.ops.nn import NNMethods
from ...ir.ops.shape import ONE_HOT
from ...runtime import Tensor

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
           "huber_loss", "l1_loss", "mse_loss", "nll_loss", "smooth_l1_loss"]

REDUCTIONS = ("mean", "sum", "none")


# --- argument handling -------------------------------------------------------------------------
def _reduction(fn: str, size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """The reduction to apply, from ``reduction`` or PyTorch's legacy pair."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduction = "none" if reduce is False else "mean" if size_average else "sum"
    if reduction not in REDUCTIONS:
        raise ValueError(with_location(f"{fn}: reduction must be one of {REDUCTIONS}, got "
                                       f"{reduction!r}"))
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _input(fn: str, value: Any) -> Tensor:
    x = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
    if x.dtype.kind != "f":
        raise DTypeError(with_location(f"{fn}: input must be a float tensor, got {describe(x)}"))
    return x


def _float_like(fn: str, what: str, value: Any, x: Tensor) -> Tensor:
    """A float operand (target, weight): tensors as they are, anything else in ``x``'s dtype."""
    if isinstance(value, Tensor):
        t = value
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise DTypeError(with_location(f"{fn}: {what} must be numbers, got {describe(array)}"))
        t = Tensor(array.astype(x.dtype))
    if t.dtype.kind != "f":
        raise DTypeError(with_location(f"{fn}: {what} must be a float tensor, got {describe(t)} "
                                       f"(input {describe(x)})"))
    return t


def _same_shape(fn: str, what: str, value: Any, x: Tensor) -> Tensor:
    t = _float_like(fn, what, value, x)
    if tuple(t.shape) != tuple(x.shape):
        raise ShapeError(with_location(f"{fn}: input {describe(x)} and {what} {describe(t)} "
                                       f"differ in shape"))
    return t


def _broadcastable(fn: str, what: str, value: Any, x: Tensor) -> Tensor:
    t = _float_like(fn, what, value, x)
    try:
        fits = np.broadcast_shapes(tuple(t.shape), tuple(x.shape)) == tuple(x.shape)
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(with_location(f"{fn}: {what} {describe(t)} does not broadcast to the "
                                       f"input {describe(x)}"))
    return t


def _class_dim(fn: str, x: Tensor) -> int:
    if x.ndim == 0:
        raise ShapeError(with_location(f"{fn}: input must have a class dimension ([C], [N, C] or "
                                       f"[N, C, d1, ...]), got {describe(x)}"))
    return 0 if x.ndim == 1 else 1


def _class_weight(fn: str, weight: Any, x: Tensor, class_dim: int) -> Tensor | None:
    """``weight`` ``[C]`` shaped to broadcast along the class dimension of ``x``."""
    if weight is None:
        return None
    w = _float_like(fn, "weight", weight, x)
    n = x.shape[class_dim]
    if tuple(w.shape) != (n,):
        raise ShapeError(with_location(f"{fn}: weight must hold one value per class ({n} for "
                                       f"input {describe(x)}), got {describe(w)}"))
    return w if class_dim == x.ndim - 1 else w.reshape((n,) + (1,) * (x.ndim - 2))


def _index_targets(fn: str, target: Any, x: Tensor, class_dim: int,
                   ignore_index: int | None) -> Tensor:
    """Class indices ``[N, d1, ...]`` as one-hot rows along ``x``'s class dimension (x's shape
    and dtype), zero where the index equals ``ignore_index``."""
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    expected = tuple(x.shape[:1]) + tuple(x.shape[2:]) if x.ndim > 1 else ()
    if t.dtype.kind not in "iu":
        probs = (f"; class probabilities need a float target of the input's shape "
                 f"{list(x.shape)}") if fn == "cross_entropy" else ""
        raise DTypeError(with_location(f"{fn}: class-index targets must be integers, got "
                                       f"{describe(t)} for input {describe(x)}{probs}"))
    if tuple(t.shape) != expected:
        probs = " (class probabilities: the input's shape)" if fn == "cross_entropy" else ""
        raise ShapeError(with_location(
            f"{fn}: target {describe(t)} does not fit input {describe(x)}: class indices need "
            f"shape {list(expected)}, the input without its class dimension {class_dim}{probs}"))
    n = x.shape[class_dim]
    try:
        if ignore_index is None and class_dim == x.ndim - 1:
            # plain one-hot rows (the compiler knows each row sums to one)
            return t._apply(ONE_HOT, (t,), {"num_classes": n, "dtype": np.dtype(x.dtype)})
        return NNMethods.class_targets(t, n, class_dim, ignore_index, x.dtype)
    except (ShapeError, DTypeError) as e:  # a class index out of range: name the loss
        raise type(e)(f"{fn}: {e}") from None


def _softmax_cross_entropy(x: Tensor, targets: Tensor, class_dim: int) -> Tensor:
    """``-sum_c targets * log_softmax(x)`` over the class dimension."""
    if x.ndim == 2:
        return x.cross_entropy_rows(targets)
    if x.ndim == 1:
        n = x.shape[0]
        return x.reshape(1, n).cross_entropy_rows(targets.reshape(1, n)).reshape(())
    return x.log_softmax(class_dim).mul(targets).sum(class_dim).neg()


def _class_reduce(loss: Tensor, onehot: Tensor, weight: Tensor | None, reduction: str,
                  ignore_index: int | None) -> Tensor:
    """Reduce a class-index loss: the mean divides by the summed weight of the targets that
    count (their number without ``weight``), as PyTorch."""
    if reduction != "mean":
        return _reduce(loss, reduction)
    if weight is None and ignore_index is None:
        return loss.mean()
    counted = onehot.sum() if weight is None else onehot.mul(weight).sum()
    return loss.sum().div(counted)


# --- classification ----------------------------------------------------------------------------
def cross_entropy(input: Tensor, target: Any, weight: Any = None,  # noqa: A002 - torch's name
                  size_average: bool | None = None, ignore_index: int | None = -100,
                  reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits ``[N, C]``, ``[N, C, d1, ...]`` or ``[C]``, as PyTorch.

    ``target``: class indices (integers, the input's shape without dim 1) or class
    probabilities (floats, the input's shape). ``weight`` ``[C]`` rescales each class;
    ``ignore_index`` targets contribute nothing (``None``: no index is ignored);
    ``label_smoothing`` mixes the target with the uniform distribution. ``"mean"`` divides by
    the summed weight of the counted targets (class indices) or by the number of samples
    (probabilities). Stable for extreme logits.
    """
    reduction = _reduction("cross_entropy", size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(with_location(f"cross_entropy: label_smoothing must be in [0, 1], got "
                                       f"{label_smoothing}"))
    x = _input("cross_entropy", input)
    class_dim = _class_dim("cross_entropy", x)
    n = x.shape[class_dim]
    w = _class_weight("cross_entropy", weight, x, class_dim)
    if not isinstance(target, Tensor):
        target = np.asarray(target)
    if tuple(target.shape) == tuple(x.shape):  # class probabilities
        if ignore_index is not None and ignore_index >= 0:
            raise ValueError(with_location("cross_entropy: ignore_index is not supported for "
                                           "class-probability targets"))
        probs = target
        if probs.dtype.kind != "f":
            raise DTypeError(with_location(
                f"cross_entropy: a target of the input's shape holds class probabilities and "
                f"must be float, got {describe(probs)} for input {describe(x)}"))
        t = _float_like("cross_entropy", "target", probs, x)
        if label_smoothing:
            t = t.mul(1.0 - label_smoothing).add(label_smoothing / n)
        if w is not None:
            t = t.mul(w)
        return _reduce(_softmax_cross_entropy(x, t, class_dim), reduction)
    onehot = _index_targets("cross_entropy", target, x, class_dim, ignore_index)
    t = onehot
    if label_smoothing:  # (1 - eps) one-hot + eps / C on every counted row
        share = label_smoothing / n
        t = onehot.mul(1.0 - label_smoothing).add(
            share if ignore_index is None else onehot.sum(class_dim, keepdims=True).mul(share))
    if w is not None:
        t = t.mul(w)
    loss = _softmax_cross_entropy(x, t, class_dim)
    return _class_reduce(loss, onehot, w, reduction, ignore_index)


def nll_loss(input: Tensor, target: Any, weight: Any = None,  # noqa: A002 - torch's name
             size_average: bool | None = None, ignore_index: int | None = -100,
             reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices under log-probabilities ``[N, C]``,
    ``[N, C, d1, ...]`` or ``[C]``: ``-weight[t] * input[n, t]``, ignored targets giving 0;
    ``"mean"`` divides by the summed weight of the counted targets, as PyTorch."""
    reduction = _reduction("nll_loss", size_average, reduce, reduction)
    x = _input("nll_loss", input)
    class_dim = _class_dim("nll_loss", x)
    w = _class_weight("nll_loss", weight, x, class_dim)
    onehot = _index_targets("nll_loss", target, x, class_dim, ignore_index)
    picked = x.mul(onehot if w is None else onehot.mul(w))
    loss = picked.sum().neg() if x.ndim == 1 else picked.sum(class_dim).neg()
    return _class_reduce(loss, onehot, w, reduction, ignore_index)


def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None,  # noqa: A002
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities ``input`` in [0, 1] against ``target`` (same
    shape): logs clamped at -100 as PyTorch, so 0 and 1 give finite losses and gradients;
    ``weight`` (broadcast to the input) rescales each element."""
    reduction = _reduction("binary_cross_entropy", size_average, reduce, reduction)
    x = _input("binary_cross_entropy", input)
    y = _same_shape("binary_cross_entropy", "target", target, x)
    loss = NNMethods.binary_cross_entropy(x, y)
    if weight is not None:
        loss = loss.mul(_broadcastable("binary_cross_entropy", "weight", weight, x))
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any,  # noqa: A002
                                     weight: Any = None, size_average: bool | None = None,
                                     reduce: bool | None = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """Sigmoid and binary cross-entropy in one stable expression, as PyTorch:
    ``(1 - y) x + (1 + (pos_weight - 1) y) softplus(-x)``; ``pos_weight`` (broadcast along
    the classes, the last dimension) weighs the positive term, ``weight`` each element."""
    fn = "binary_cross_entropy_with_logits"
    reduction = _reduction(fn, size_average, reduce, reduction)
    x = _input(fn, input)
    y = _same_shape(fn, "target", target, x)
    log_sig = x.neg().softplus()  # -log(sigmoid(x)), stable
    if pos_weight is not None:
        pw = _broadcastable(fn, "pos_weight", pos_weight, x)
        log_sig = log_sig.mul(pw.sub(1.0).mul(y).add(1.0))
    loss = x.sub(x.mul(y)).add(log_sig)
    if weight is not None:
        loss = loss.mul(_broadcastable(fn, "weight", weight, x))
    return _reduce(loss, reduction)


# --- regression --------------------------------------------------------------------------------
def _weighted(fn: str, loss: Tensor, weight: Any, x: Tensor, reduction: str,
              mean_by_weight: bool = True) -> Tensor:
    """PyTorch's element ``weight`` (the input's shape): weighted mean divides by its sum."""
    if weight is None:
        return _reduce(loss, reduction)
    w = _float_like(fn, "weight", weight, x)
    if tuple(w.shape) != tuple(x.shape):
        raise ShapeError(with_location(f"{fn}: weight {describe(w)} and input {describe(x)} "
                                       f"must have the same shape"))
    loss = loss.mul(w)
    if reduction == "mean" and mean_by_weight:
        return loss.sum().div(w.sum())
    return _reduce(loss, reduction)


def mse_loss(input: Tensor, target: Any, size_average: bool | None = None,  # noqa: A002
             reduce: bool | None = None, reduction: str = "mean", weight: Any = None) -> Tensor:
    """Mean squared error ``(input - target) ** 2`` (target of the input's shape)."""
    reduction = _reduction("mse_loss", size_average, reduce, reduction)
    x = _input("mse_loss", input)
    diff = x.sub(_same_shape("mse_loss", "target", target, x))
    return _weighted("mse_loss", diff.mul(diff), weight, x, reduction)


def l1_loss(input: Tensor, target: Any, size_average: bool | None = None,  # noqa: A002
            reduce: bool | None = None, reduction: str = "mean", weight: Any = None) -> Tensor:
    """Mean absolute error ``|input - target|``."""
    reduction = _reduction("l1_loss", size_average, reduce, reduction)
    x = _input("l1_loss", input)
    diff = x.sub(_same_shape("l1_loss", "target", target, x))
    return _weighted("l1_loss", diff.abs(), weight, x, reduction)


def _quadratic_then_linear(diff: Tensor, width: float, scale: float) -> Tensor:
    """``0.5 d^2 / width`` for ``|d| < width``, else ``|d| - 0.5 width``; times ``scale``."""
    size = diff.abs()
    quadratic = diff.mul(diff).mul(0.5 * scale / width)
    linear = size.sub(0.5 * width).mul(scale) if scale != 1.0 else size.sub(0.5 * width)
    return size.lt(width).select(quadratic, linear)


def smooth_l1_loss(input: Tensor, target: Any, size_average: bool | None = None,  # noqa: A002
                   reduce: bool | None = None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``beta=0``: L1)."""
    reduction = _reduction("smooth_l1_loss", size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(with_location(f"smooth_l1_loss: beta must be >= 0, got {beta}"))
    x = _input("smooth_l1_loss", input)
    diff = x.sub(_same_shape("smooth_l1_loss", "target", target, x))
    loss = diff.abs() if beta == 0 else _quadratic_then_linear(diff, float(beta), 1.0)
    return _reduce(loss, reduction)


def huber_loss(input: Tensor, target: Any, reduction: str = "mean",  # noqa: A002
               delta: float = 1.0, weight: Any = None) -> Tensor:
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``; ``weight`` (the
    input's shape) rescales each element (its mean stays the plain mean, as PyTorch)."""
    reduction = _reduction("huber_loss", None, None, reduction)
    if delta <= 0:
        raise ValueError(with_location(f"huber_loss: delta must be > 0, got {delta}"))
    x = _input("huber_loss", input)
    diff = x.sub(_same_shape("huber_loss", "target", target, x))
    loss = _quadratic_then_linear(diff, float(delta), float(delta))
    return _weighted("huber_loss", loss, weight, x, reduction, mean_by_weight=False)
