"""Op cases of the losses and normalisation functions (``aprender.nn.functional``).

The references are written independently of the implementation, from PyTorch's documented
formulas: class-index losses gather the target's log-probability with ``take_along_axis`` and
divide the mean by the summed weight of the counted targets; batch and layer norm use
``numpy.var``. Class indices (with ignored entries) are ``fixed`` arguments, so the compiled
check passes them as graph inputs.
"""

from __future__ import annotations

import numpy as np
from opcases import Case, away_from, uniform

from aprender import nn
from aprender.nn import functional as F
from aprender.runtime import Tensor


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def reduce(loss: np.ndarray, reduction: str, denominator: float | None = None) -> np.ndarray:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (loss.size if denominator is None else denominator)


def ce_ref(x: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None,
           ignore_index: int = -100, reduction: str = "mean", smoothing: float = 0.0,
           log_probs: bool = False) -> np.ndarray:
    """PyTorch's cross-entropy (``log_probs=True``: NLL) of class indices: the NLL term of the
    target class and the smoothing term over all classes, each weighted, ignored targets
    counting nothing; the mean divides by the summed weight of the counted targets."""
    class_dim = 0 if x.ndim == 1 else 1
    n = x.shape[class_dim]
    logp = np.moveaxis(x if log_probs else log_softmax(x, class_dim), class_dim, -1)
    w = np.ones(n, dtype=x.dtype) if weight is None else weight
    counted = target != ignore_index
    safe = np.where(counted, target, 0)
    picked = np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    nll = -w[safe] * picked * counted
    smooth = -(logp * w).sum(-1) * counted
    loss = (1 - smoothing) * nll + smoothing / n * smooth
    return reduce(loss, reduction, (w[safe] * counted).sum())


def ce_probs_ref(x: np.ndarray, p: np.ndarray, weight: np.ndarray | None = None,
                 reduction: str = "mean", smoothing: float = 0.0) -> np.ndarray:
    """PyTorch's cross-entropy of class probabilities: the mean divides by the number of
    samples (the input's size over the classes), not by weights."""
    class_dim = 0 if x.ndim == 1 else 1
    n = x.shape[class_dim]
    logp = np.moveaxis(log_softmax(x, class_dim), class_dim, -1)
    q = np.moveaxis(p, class_dim, -1) * (1 - smoothing) + smoothing / n
    w = np.ones(n, dtype=x.dtype) if weight is None else weight
    return reduce(-(logp * q * w).sum(-1), reduction)


def bce_ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -(y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log(1 - x), -100))


def bce_logits_ref(x: np.ndarray, y: np.ndarray, pos_weight: np.ndarray | float = 1.0
                   ) -> np.ndarray:
    sig = 1 / (1 + np.exp(-x))
    return -(pos_weight * y * np.log(sig) + (1 - y) * np.log(1 - sig))


def huber_ref(d: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(d)
    return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))


def batch_norm_ref(x: np.ndarray, mean: np.ndarray | None, var: np.ndarray | None,
                   w: np.ndarray | None, b: np.ndarray | None, eps: float = 1e-5) -> np.ndarray:
    """Batch statistics when ``mean``/``var`` are None (training), else the given ones."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes, keepdims=True) if mean is None else mean.reshape(shape)
    sigma2 = x.var(axis=axes, keepdims=True) if var is None else var.reshape(shape)
    out = (x - mu) / np.sqrt(sigma2 + eps)
    if w is not None:
        out = out * w.reshape(shape)
    return out if b is None else out + b.reshape(shape)


def layer_norm_ref(x: np.ndarray, k: int, w: np.ndarray | None = None,
                   b: np.ndarray | None = None, eps: float = 1e-5) -> np.ndarray:
    axes = tuple(range(x.ndim - k, x.ndim))
    out = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True)
                                                           + eps)
    if w is not None:
        out = out * w
    return out if b is None else out + b


def _train_bn(x: Tensor, *rest: Tensor) -> Tensor:
    """F.batch_norm in training with fresh running statistics (updated, not returned)."""
    c = x.shape[1]
    mean, var = Tensor(np.zeros(c, x.dtype)), Tensor(np.ones(c, x.dtype))
    return F.batch_norm(x, mean, var, *rest, training=True)


T5 = np.array([0, 3, -100, 2, 3])  # class indices of [5, 4] logits, one ignored
T_ND = np.array([[1, 0, -100], [3, 3, 2]])  # of [2, 4, 3] logits
T_4D = np.array([[[0, 2], [1, 1]], [[2, 0], [-100, 1]]])  # of [2, 3, 2, 2] logits
W4 = np.array([0.5, 1.5, 1.0, 2.0])
POSITIVE = uniform(0.5, 2.0)  # logits, and weights / variances that must stay positive

CASES = [
    # --- cross-entropy of class indices ---
    Case("ce_index", lambda x, t: F.cross_entropy(x, t), ce_ref, ((5, 4),), fixed=(T5,)),
    Case("ce_index_sum", lambda x, t: F.cross_entropy(x, t, reduction="sum"),
         lambda x, t: ce_ref(x, t, reduction="sum"), ((5, 4),), fixed=(T5,)),
    Case("ce_index_none_smoothing",
         lambda x, t: F.cross_entropy(x, t, reduction="none", label_smoothing=0.2),
         lambda x, t: ce_ref(x, t, reduction="none", smoothing=0.2), ((5, 4),), fixed=(T5,)),
    Case("ce_weight_smoothing",
         lambda x, w, t: F.cross_entropy(x, t, w, label_smoothing=0.3),
         lambda x, w, t: ce_ref(x, t, w, smoothing=0.3), ((5, 4), (4,)), POSITIVE, fixed=(T5,),
         rtol=1e-11),
    Case("ce_ignore_class_1", lambda x, t: F.cross_entropy(x, t, ignore_index=1),
         lambda x, t: ce_ref(x, t, ignore_index=1), ((4, 3),),
         fixed=(np.array([1, 0, 2, 1]),)),
    Case("ce_nd", lambda x, w, t: F.cross_entropy(x, t, w, label_smoothing=0.1),
         lambda x, w, t: ce_ref(x, t, w, smoothing=0.1), ((2, 4, 3), (4,)), POSITIVE,
         fixed=(T_ND,), rtol=1e-11),
    Case("ce_4d_none", lambda x, t: F.cross_entropy(x, t, reduction="none"),
         lambda x, t: ce_ref(x, t, reduction="none"), ((2, 3, 2, 2),), fixed=(T_4D,)),
    Case("ce_unbatched", lambda x, t: F.cross_entropy(x, t), ce_ref, ((4,),),
         fixed=(np.array(2),)),
    Case("ce_seed_nn", lambda x, t: nn.cross_entropy(x, t, 0.1),
         lambda x, t: ce_ref(x, t, smoothing=0.1), ((3, 4),), fixed=(np.array([3, 0, 1]),)),
    # --- cross-entropy of class probabilities (differentiable targets) ---
    Case("ce_probs", lambda x, p: F.cross_entropy(x, p, W4, label_smoothing=0.2),
         lambda x, p: ce_probs_ref(x, p, W4, smoothing=0.2), ((3, 4), (3, 4)), POSITIVE),
    Case("ce_probs_nd_none", lambda x, p: F.cross_entropy(x, p, reduction="none"),
         lambda x, p: ce_probs_ref(x, p, reduction="none"), ((2, 3, 4), (2, 3, 4)), POSITIVE),
    # --- negative log-likelihood ---
    Case("nll", lambda x, t: F.nll_loss(x, t), lambda x, t: ce_ref(x, t, log_probs=True),
         ((5, 4),), fixed=(T5,)),
    Case("nll_weight", lambda x, w, t: F.nll_loss(x, t, w),
         lambda x, w, t: ce_ref(x, t, w, log_probs=True), ((5, 4), (4,)), POSITIVE,
         fixed=(T5,)),
    Case("nll_nd_none", lambda x, t: F.nll_loss(x, t, W4, reduction="none"),
         lambda x, t: ce_ref(x, t, W4, reduction="none", log_probs=True), ((2, 4, 3),),
         fixed=(T_ND,)),
    Case("nll_unbatched", lambda x, t: F.nll_loss(x, t),
         lambda x, t: ce_ref(x, t, log_probs=True), ((4,),), fixed=(np.array(1),)),
    # --- binary cross-entropy ---
    Case("binary_cross_entropy", lambda x, y: F.binary_cross_entropy(x, y, reduction="none"),
         bce_ref, ((3, 4), (3, 4)), uniform(0.05, 0.95)),
    Case("bce_weight_mean", lambda x, y, w: F.binary_cross_entropy(x, y, w),
         lambda x, y, w: (bce_ref(x, y) * w).mean(), ((3, 4), (3, 4), (4,)),
         uniform(0.05, 0.95)),
    Case("bce_with_logits", lambda x, y: F.binary_cross_entropy_with_logits(x, y),
         lambda x, y: bce_logits_ref(x, y).mean(), ((3, 4), (3, 4)), uniform(0.05, 0.95)),
    Case("bce_with_logits_pos_weight",
         lambda x, y, w, pw: F.binary_cross_entropy_with_logits(x, y, w, reduction="none",
                                                                pos_weight=pw),
         lambda x, y, w, pw: bce_logits_ref(x, y, pw) * w, ((3, 4), (3, 4), (3, 1), (4,)),
         uniform(0.2, 0.9)),
    # --- regression ---
    Case("mse_loss", lambda x, y: F.mse_loss(x, y), lambda x, y: ((x - y) ** 2).mean(),
         ((3, 4), (3, 4))),
    Case("mse_loss_weight", lambda x, y, w: F.mse_loss(x, y, weight=w),
         lambda x, y, w: ((x - y) ** 2 * w).sum() / w.sum(), ((3, 4), (3, 4), (3, 4)),
         POSITIVE),
    Case("l1_loss_none", lambda x, t: F.l1_loss(x, t, reduction="none"),
         lambda x, t: np.abs(x - t), ((3, 4),), away_from([0.0]), fixed=(np.zeros((3, 4)),)),
    Case("smooth_l1_loss", lambda x, t: F.smooth_l1_loss(x, t, beta=0.5),
         lambda x, t: (huber_ref(x - t, 0.5) / 0.5).mean(), ((3, 4),),
         away_from([-0.5, 0.0, 0.5]), fixed=(np.zeros((3, 4)),)),
    Case("huber_loss", lambda x, t: F.huber_loss(x, t, reduction="sum", delta=1.5),
         lambda x, t: huber_ref(x - t, 1.5).sum(), ((3, 4),), away_from([-1.5, 1.5], -3, 3),
         fixed=(np.zeros((3, 4)),)),
    # --- normalisation ---
    Case("batch_norm_train", _train_bn, lambda x, w, b: batch_norm_ref(x, None, None, w, b),
         ((6, 3), (3,), (3,)), rtol=1e-10),
    Case("batch_norm_train_3d", lambda x, w: _train_bn(x, w),
         lambda x, w: batch_norm_ref(x, None, None, w, None), ((3, 2, 4), (2,)), rtol=1e-10),
    Case("batch_norm_train_2d_images", lambda x: _train_bn(x),
         lambda x: batch_norm_ref(x, None, None, None, None), ((2, 3, 2, 2),), rtol=1e-10),
    Case("batch_norm_eval",
         lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b, training=False, eps=1e-3),
         lambda x, m, v, w, b: batch_norm_ref(x, m, v, w, b, 1e-3),
         ((4, 3, 2), (3,), (3,), (3,), (3,)), POSITIVE, rtol=1e-10),
    Case("layer_norm", lambda x, w, b: F.layer_norm(x, 4, w, b),
         lambda x, w, b: layer_norm_ref(x, 1, w, b), ((3, 4), (4,), (4,)), rtol=1e-10),
    Case("layer_norm_2d_shape", lambda x: F.layer_norm(x, (3, 4), eps=1e-3),
         lambda x: layer_norm_ref(x, 2, eps=1e-3), ((2, 3, 4),), rtol=1e-10),
]

#: ops tested only through others (with where)
INDIRECT = {
    # integer targets record no node (no gradient): every class-index case above, and
    # tests/test_losses.py (values, shape rule, range check eager and compiled)
    "class_targets",
}
