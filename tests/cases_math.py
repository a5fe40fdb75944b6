"""Op cases of the element-wise math, reductions and activations added for PyTorch models.

References are plain numpy (and ``math.erf``, vectorised), never aprender; gradients are
checked against finite differences by ``tests/test_ops.py``.
"""

from __future__ import annotations

import math

import numpy as np
from opcases import Case, away_from, distinct, uniform

import aprender.nn.functional as F

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu_erf(x):
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _bits(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """0s and 1s (any/all)."""
    return rng.integers(0, 2, shape).astype(np.float64)


def _specials(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Values with NaNs and infinities among them (isnan/isinf)."""
    x = rng.uniform(-2, 2, shape).reshape(-1)
    x[::3], x[1::4], x[2::5] = np.nan, np.inf, -np.inf
    return x.reshape(shape)


def _ints(x):
    return np.floor(x * 3).astype(np.int64)


#: kinks of floor (integers) and of round (halves), to sample away from
_INTEGERS = [float(k) for k in range(-2, 3)]
_HALVES = [k + 0.5 for k in range(-3, 3)]

CASES = [
    # --- element-wise math ---------------------------------------------------------------------
    Case("sin", lambda x: x.sin(), np.sin, ((3, 4),)),
    Case("cos", lambda x: x.cos(), np.cos, ((3, 4),)),
    Case("erf", lambda x: x.erf(), _erf, ((3, 4),), uniform(-3, 3), rtol=1e-14),
    Case("square", lambda x: x.square(), np.square, ((3, 4),)),
    Case("rsqrt", lambda x: x.rsqrt(), lambda x: 1 / np.sqrt(x), ((3, 4),), uniform(0.5, 3)),
    Case("floor", lambda x: x.floor(), np.floor, ((3, 4),), away_from(_INTEGERS)),
    Case("round", lambda x: x.round(), np.round, ((3, 4),), away_from(_HALVES)),
    Case("round_decimals", lambda x: x.round(1), lambda x: np.round(x, 1), ((3, 4),),
         away_from([k / 10 + 0.05 for k in range(-20, 20)], gap=0.01)),
    Case("sign_grad_zero", lambda x: x.sign(), np.sign, ((3, 4),), away_from([0])),
    Case("isnan", lambda x: x.isnan(), np.isnan, ((3, 4),), _specials, grads=False),
    Case("isinf", lambda x: x.isinf(), np.isinf, ((3, 4),), _specials, grads=False),
    Case("pow_int_int", lambda x: _ints(x) ** 2, lambda x: _ints(x) ** 2, ((3, 4),),
         grads=False),
    Case("power_int_int", lambda x, y: _ints(x) ** _ints(y).clip(0, None),
         lambda x, y: _ints(x) ** np.clip(_ints(y), 0, None), ((3, 4), (4,)), grads=False),
    Case("pow_zero", lambda x: x ** 0.0, lambda x: x ** 0.0, ((3, 4),)),
    # --- activations ---------------------------------------------------------------------------
    Case("gelu_erf", lambda x: x.gelu(approximate="none"), _gelu_erf, ((3, 4),),
         uniform(-3, 3), rtol=1e-14),
    Case("F_gelu", lambda x: F.gelu(x), _gelu_erf, ((3, 4),), rtol=1e-14),
    Case("F_gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), _gelu_tanh, ((3, 4),)),
    Case("silu", lambda x: x.silu(), lambda x: x * _sigmoid(x), ((3, 4),), rtol=1e-11),
    Case("F_silu", lambda x: F.silu(x), lambda x: x / (1 + np.exp(-x)), ((3, 4),), rtol=1e-11),
    Case("elu", lambda x: x.elu(0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
         ((3, 4),), away_from([0])),
    Case("F_elu", lambda x: F.elu(x), lambda x: np.where(x > 0, x, np.exp(x) - 1), ((3, 4),),
         away_from([0]), rtol=1e-11),
    Case("F_softplus", lambda x: F.softplus(x), lambda x: np.log1p(np.exp(x)), ((3, 4),),
         uniform(-3, 3)),
    Case("F_softplus_beta_threshold", lambda x: F.softplus(x, beta=2.0, threshold=3.0),
         lambda x: np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2), ((3, 4),),
         away_from([1.5]), rtol=1e-11),
    Case("F_relu", lambda x: F.relu(x), lambda x: np.maximum(x, 0), ((3, 4),), away_from([0])),
    Case("F_leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
         ((3, 4),), away_from([0])),
    Case("F_sigmoid", lambda x: F.sigmoid(x), _sigmoid, ((3, 4),), rtol=1e-11),
    Case("F_tanh", lambda x: F.tanh(x), np.tanh, ((3, 4),)),
    Case("F_softmax", lambda x: F.softmax(x, dim=0), lambda x: _softmax(x, 0), ((3, 4),)),
    Case("F_log_softmax", lambda x: F.log_softmax(x, 1), lambda x: np.log(_softmax(x, 1)),
         ((3, 4),)),
    # --- reductions ----------------------------------------------------------------------------
    Case("sum_dim_keepdim", lambda x: x.sum(dim=1, keepdim=True),
         lambda x: x.sum(1, keepdims=True), ((3, 4),)),
    Case("sum_empty_dims_is_all", lambda x: x.sum(dim=()), np.sum, ((3, 4),)),
    Case("mean_dims", lambda x: x.mean(dim=(0, 2)), lambda x: x.mean((0, 2)), ((2, 3, 4),)),
    Case("softmax_dim", lambda x: x.softmax(dim=0), lambda x: _softmax(x, 0), ((3, 4),)),
    Case("softmax_0d", lambda x: x.softmax(-1), lambda x: np.ones(()), ((),)),
    Case("log_softmax_0d", lambda x: x.log_softmax(0), lambda x: np.zeros(()), ((),)),
    Case("sum_0d_dim", lambda x: x.sum(-1), lambda x: x, ((),)),
    Case("min_axis", lambda x: x.min(1), lambda x: x.min(1), ((3, 4),), distinct),
    Case("min_all", lambda x: x.min(), np.min, ((3, 4),), distinct),
    Case("amax_dims", lambda x: x.amax(dim=(0, 2)), lambda x: x.max((0, 2)), ((2, 3, 4),),
         distinct),
    Case("amin_keepdim", lambda x: x.amin(1, keepdim=True), lambda x: x.min(1, keepdims=True),
         ((3, 4),), distinct),
    Case("argmax", lambda x: x.argmax(1), lambda x: x.argmax(1), ((3, 4),), distinct,
         grads=False),
    Case("argmax_flat", lambda x: x.argmax(), np.argmax, ((3, 4),), distinct, grads=False),
    Case("argmin_keepdim", lambda x: x.argmin(dim=0, keepdim=True),
         lambda x: x.argmin(0, keepdims=True), ((3, 4),), distinct, grads=False),
    Case("var", lambda x: x.var(1), lambda x: x.var(1, ddof=1), ((3, 4),)),
    Case("var_all_biased", lambda x: x.var(unbiased=False), np.var, ((3, 4),)),
    Case("var_correction_keepdim", lambda x: x.var(dim=(0, 2), correction=2, keepdim=True),
         lambda x: x.var((0, 2), ddof=2, keepdims=True), ((2, 3, 4),)),
    Case("std", lambda x: x.std(0), lambda x: x.std(0, ddof=1), ((3, 4),)),
    Case("std_all_correction0", lambda x: x.std(correction=0), np.std, ((3, 4),)),
    Case("prod", lambda x: x.prod(1), lambda x: x.prod(1), ((3, 4),)),
    Case("prod_all", lambda x: x.prod(), np.prod, ((2, 3),), uniform(0.5, 1.5)),
    Case("prod_keepdim", lambda x: x.prod(dim=0, keepdim=True),
         lambda x: x.prod(0, keepdims=True), ((3, 4),)),
    Case("logsumexp", lambda x: x.logsumexp(1), lambda x: _logsumexp(x, 1), ((3, 4),)),
    Case("logsumexp_dims_keepdim", lambda x: x.logsumexp((0, 2), keepdim=True),
         lambda x: _logsumexp(x, (0, 2), True), ((2, 3, 4),)),
    Case("any", lambda x: x.any(1), lambda x: x.any(1), ((3, 4),), _bits, grads=False),
    Case("all_keepdim", lambda x: x.all(dim=0, keepdim=True), lambda x: x.all(0, keepdims=True),
         ((3, 4),), _bits, grads=False),
    Case("all_flat", lambda x: x.all(), np.all, ((3, 4),), _bits, grads=False),
    Case("cumsum", lambda x: x.cumsum(1), lambda x: x.cumsum(1), ((3, 4),)),
    Case("cumsum_dim0", lambda x: x.cumsum(dim=-3), lambda x: x.cumsum(0), ((2, 3, 4),)),
]

#: ops tested only through others (with where)
INDIRECT = {
    # the zero gradient of sign, floor, round and x ** 0: no gradient of its own, so it is not
    # recorded; tests/test_math_ops.py checks those gradients (eager and compiled)
    "zeros_like",
    # no gradient, so eager records no node for the coverage check to see: their cases above
    # check values and compiled code, and test_math_ops.py::test_shape_rules_of_unrecorded_ops
    # checks their shape rules against their kernels
    "isnan", "isinf", "argmax", "argmin", "any", "all",
}
