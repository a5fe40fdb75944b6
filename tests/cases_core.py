"""Op cases of the seed's ops (element-wise, reductions, shapes, matmul, joins)."""

from __future__ import annotations

import math

import numpy as np
from opcases import Case, away_from, distinct, uniform

import aprender as ap


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


CASES = [
    Case("neg", lambda x: -x, np.negative, ((3, 4),)),
    Case("exp", lambda x: x.exp(), np.exp, ((3, 4),)),
    Case("log", lambda x: x.log(), np.log, ((3, 4),), uniform(0.5, 3)),
    Case("sqrt", lambda x: x.sqrt(), np.sqrt, ((3, 4),), uniform(0.5, 3)),
    Case("pow2", lambda x: x.pow(2.0), lambda x: x**2, ((3, 4),)),
    Case("pow3", lambda x: x**3, lambda x: x**3, ((5,),)),
    Case("pow_half", lambda x: x.pow(0.5), np.sqrt, ((4,),), uniform(0.5, 3)),
    Case("abs", lambda x: x.abs(), np.abs, ((3, 4),), away_from([0])),
    Case("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), ((3, 4),), away_from([0])),
    Case("leaky_relu", lambda x: x.leaky_relu(0.1), lambda x: np.where(x > 0, x, 0.1 * x),
         ((3, 4),), away_from([0])),
    Case("sigmoid", lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), ((3, 4),)),
    Case("tanh", lambda x: x.tanh(), np.tanh, ((3, 4),)),
    Case("softplus", lambda x: x.softplus(), lambda x: np.log1p(np.exp(x)), ((3, 4),)),
    Case("gelu", lambda x: x.gelu(), _gelu, ((3, 4),)),
    Case("clip", lambda x: x.clip(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), ((3, 4),),
         away_from([-0.5, 0.5])),
    Case("softmax", lambda x: x.softmax(), _softmax, ((3, 4),)),
    Case("softmax_axis0", lambda x: x.softmax(0), lambda x: _softmax(x, 0), ((3, 4),)),
    Case("softmax_1d", lambda x: x.softmax(), _softmax, ((5,),)),
    Case("log_softmax", lambda x: x.log_softmax(),
         lambda x: np.log(_softmax(x)), ((3, 4),)),
    Case("cross_entropy_rows", lambda z, t: z.cross_entropy_rows(t),
         lambda z, t: -(t * np.log(_softmax(z))).sum(1), ((3, 4), (3, 4)), uniform(0.1, 2)),
    Case("sum", lambda x: x.sum(), np.sum, ((3, 4),)),
    Case("sum_axis0", lambda x: x.sum_axis(0), lambda x: x.sum(0), ((3, 4),)),
    Case("sum_axis1_keep", lambda x: x.sum_axis(1, keepdims=True),
         lambda x: x.sum(1, keepdims=True), ((3, 4),)),
    Case("mean", lambda x: x.mean(), np.mean, ((3, 4),)),
    Case("mean_axis", lambda x: x.mean_axis(-1), lambda x: x.mean(-1), ((2, 3, 4),)),
    Case("max_axis", lambda x: x.max_axis(1), lambda x: x.max(1), ((3, 4),), distinct),
    Case("max_all", lambda x: x.max(), np.max, ((3, 4),), distinct),
    Case("reshape", lambda x: x.reshape(4, 3), lambda x: x.reshape(4, 3), ((3, 4),)),
    Case("view", lambda x: x.view([-1]), lambda x: x.reshape(-1), ((3, 4),)),
    Case("transpose", lambda x: x.transpose(), lambda x: x.T, ((3, 4),)),
    Case("transpose_axes", lambda x: x.transpose((1, 2, 0)),
         lambda x: x.transpose(1, 2, 0), ((2, 3, 4),)),
    Case("T", lambda x: x.T, lambda x: x.T, ((3, 4),)),
    Case("broadcast_to", lambda x: x.broadcast_to((2, 3, 4)),
         lambda x: np.broadcast_to(x, (2, 3, 4)), ((3, 1),)),
    Case("sum_to", lambda x: x.sum_to((3, 1)), lambda x: x.sum(axis=(0, 2))[:, None],
         ((2, 3, 4),)),
    Case("getitem_slice", lambda x: x[:, 1:3], lambda x: x[:, 1:3], ((3, 4),)),
    Case("getitem_int", lambda x: x[1], lambda x: x[1], ((3, 4),)),
    Case("getitem_step", lambda x: x[::2, ::-1], lambda x: x[::2, ::-1], ((3, 4),)),
    Case("getitem_gather", lambda x: x[np.arange(3), np.array([0, 3, 3])],
         lambda x: x[np.arange(3), np.array([0, 3, 3])], ((3, 4),)),
    Case("getitem_repeat", lambda x: x[[0, 0, 2]], lambda x: x[[0, 0, 2]], ((3, 4),)),
    Case("getitem_none_ellipsis", lambda x: x[None, ..., 0], lambda x: x[None, ..., 0],
         ((3, 4),)),
    Case("add", lambda a, b: a + b, np.add, ((3, 4), (4,))),
    Case("sub", lambda a, b: a - b, np.subtract, ((3, 1), (1, 4))),
    Case("mul", lambda a, b: a * b, np.multiply, ((2, 3, 4), (3, 1))),
    Case("div", lambda a, b: a / b, np.divide, ((3, 4), (3, 4)), uniform(0.5, 2)),
    Case("power", lambda a, b: a.pow(b), np.power, ((3, 4), (4,)), uniform(0.5, 2)),
    Case("rsub_scalar", lambda a: 1.0 - a, lambda a: 1.0 - a, ((3,),)),
    Case("rdiv_scalar", lambda a: 2.0 / a, lambda a: 2.0 / a, ((3,),), uniform(0.5, 2)),
    Case("maximum", lambda a, b: ap.maximum(a, b), np.maximum, ((3, 4), (4,)), distinct),
    Case("minimum", lambda a, b: ap.minimum(a, b), np.minimum, ((3, 4), (3, 4)), distinct),
    Case("where", lambda a, b: ap.where(np.array([True, False, True, False]), a, b),
         lambda a, b: np.where(np.array([True, False, True, False]), a, b), ((3, 4), (3, 1))),
    Case("add_broadcast", lambda x, b: x.add_broadcast(b), np.add, ((3, 4), (4,))),
    Case("matmul", lambda a, b: a @ b, np.matmul, ((3, 4), (4, 5))),
    Case("matmul_vec_mat", lambda a, b: a @ b, np.matmul, ((4,), (4, 5))),
    Case("matmul_mat_vec", lambda a, b: a @ b, np.matmul, ((3, 4), (4,))),
    Case("matmul_dot", lambda a, b: a @ b, np.matmul, ((4,), (4,))),
    Case("matmul_batched", lambda a, b: a.matmul(b), np.matmul, ((2, 3, 4), (4, 5))),
    Case("matmul_batch_bcast", lambda a, b: a @ b, np.matmul, ((2, 1, 3, 4), (3, 4, 2))),
    Case("concat", lambda a, b: ap.concat([a, b], 1), lambda a, b: np.concatenate([a, b], 1),
         ((3, 2), (3, 4))),
    Case("stack", lambda a, b: ap.stack([a, b], -1), lambda a, b: np.stack([a, b], -1),
         ((3, 4), (3, 4))),
]

#: ops tested only through others (with where)
INDIRECT = {
    "constant",  # traced constants: tests/test_ir.py
    "one_hot",  # tests/test_nn.py (losses) and tests/test_ir.py
    "detach",  # stop-gradient: tests/test_compile_trust.py
    # no gradient, or only reached as another op's gradient (tested through it):
    "sign", "gt", "ge", "lt", "le", "eq", "ne",
    "astype",  # test_ops.py::test_astype_casts_value_and_gradient
}
