"""Sums over every axis but one (BatchNorm's channel sums, bias gradients) as BLAS gemvs with
ones vectors, in the ``sum``/``sum_to`` kernels; and ``nn.Linear`` on
N-d inputs as one 2-D GEMM."""

from __future__ import annotations

import numpy as np
import pytest

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.compiler import lower
from aprender.ir.ops.reductions import _blas_sum, _sum_impl, _sum_to_impl

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [
    ((6, 5, 4, 3), (0, 2, 3)), ((6, 5, 4), (0, 1)), ((7, 5), (0,)), ((1, 5, 4, 3), (0, 2, 3)),
    ((6, 5, 1, 1), (0, 2, 3)), ((0, 5, 2), (0, 2)), ((3, 4, 5, 2), (0, 1, 3))])
def test_blas_sums_equal_add_reduce(shape, axis, dtype) -> None:
    a = RNG.standard_normal(shape).astype(dtype)
    want = np.add.reduce(a, axis=axis, keepdims=True)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    fast = _blas_sum(a, axis)
    assert fast is not None and fast.dtype == dtype
    np.testing.assert_allclose(fast.reshape(want.shape), want, rtol=rtol, atol=rtol)
    got = _sum_impl(a, axis, True)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    to = tuple(d if i not in axis else 1 for i, d in enumerate(shape))
    np.testing.assert_allclose(_sum_to_impl(a, to), want, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(_sum_to_impl(a, to[1:]), want.reshape(to[1:]), rtol=rtol,
                               atol=rtol)


def test_blas_sums_leave_other_cases_to_add_reduce() -> None:
    a = RNG.standard_normal((4, 5, 6))
    assert _blas_sum(a, (1, 2)) is None                # keeps the first axis
    assert _blas_sum(a, (0,)) is None                  # keeps two
    assert _blas_sum(a, None) is None
    assert _blas_sum(a.transpose(1, 0, 2), (0, 2)) is None   # not C-contiguous
    assert _blas_sum(a.astype(np.int32), (0, 2)) is None
    ints = (a > 0).astype(np.int8)
    assert _sum_impl(ints, (0, 2), False).dtype == np.int64
    np.testing.assert_array_equal(_sum_impl(ints, (0, 2), False), ints.sum((0, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.bool_])
@pytest.mark.parametrize("keepdims", [True, False])
def test_compiled_channel_sums_equal_eager(dtype, keepdims) -> None:
    def f(x):
        return x.sum((0, 2, 3), keepdims=keepdims)

    data = RNG.standard_normal((4, 3, 2, 5))
    data = (data > 0) if dtype == np.bool_ else (data * 5).astype(dtype)
    for arr in (data, np.ascontiguousarray(data.transpose(0, 1, 3, 2)),
                data.transpose(0, 1, 3, 2)):
        compiled = lower(ap.trace(f, Tensor(arr)))
        got = compiled(arr)[0]
        want = f(Tensor(arr)).data()
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_linear_on_nd_inputs_is_one_2d_gemm() -> None:
    layer = nn.Linear(5, 3, rng=0, dtype=np.float64)
    x = Tensor(RNG.standard_normal((2, 4, 5))).requires_grad()
    y = layer(x)
    assert y.shape == (2, 4, 3)
    np.testing.assert_allclose(y.data(), x.data() @ layer.weight.data() + layer.bias.data(),
                               rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(layer.weight.grad().data(),
                               np.einsum("bli->i", x.data())[:, None] * np.ones((1, 3)),
                               rtol=1e-12)
    np.testing.assert_allclose(x.grad().data(),
                               np.broadcast_to(layer.weight.data().sum(1), (2, 4, 5)),
                               rtol=1e-12)
    graph = ap.trace(lambda t: layer(t).sum(), Tensor(x.data()))
    assert not any(n.op.name == "matmul" and len(n.inputs[0].shape) > 2 for n in graph.nodes)


def test_float32_erf_is_the_rational_approximation_within_5e_7() -> None:
    from aprender.ir.ops.special import erf, erf_cody
    x = np.concatenate([np.linspace(-6, 6, 20001), [0.0, -0.0, 1e-30, 26.0, -30.0]])
    got = erf(x.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, erf_cody(x), rtol=0, atol=5e-7)
    assert np.signbit(got[-4]) and got[-2] == 1.0 and got[-1] == -1.0
    special = erf(np.float32([np.inf, -np.inf, np.nan]))
    assert special[0] == 1.0 and special[1] == -1.0 and np.isnan(special[2])
    assert erf(np.array(0.5, np.float32)).shape == ()
    assert erf(np.float64(0.5)).dtype == np.float64     # float64 keeps scipy's or Cody's


def test_float32_erf_never_leaves_minus_one_to_one() -> None:
    from aprender.ir.ops.special import erf

    x = np.linspace(-6, 6, 200001).astype(np.float32)
    assert np.abs(erf(x)).max() <= 1.0
