"""Construction, dtype rules, numpy interop, repr, ids, factories and indexing."""

from __future__ import annotations

import numpy as np
import pytest

import aprender as ap
from aprender.autograd import Tensor, clear_grad, get_grad


def test_dtype_rules() -> None:
    assert Tensor([1, 2]).dtype == np.float32
    assert Tensor(3.0).dtype == np.float32 and Tensor(3.0).shape == ()
    assert Tensor(np.array([1.0])).dtype == np.float64
    assert Tensor(np.array([1, 2])).dtype == np.int64
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor([True, False]).dtype == np.bool_
    assert (Tensor([1.0]) * 2.0).dtype == np.float32  # Python scalars do not promote
    assert (Tensor(np.array([1.0])) + np.float32(1)).dtype == np.float64
    assert (Tensor(np.array([1, 2])) * 0.5).dtype == np.float64  # numpy promotion


def test_constructor_copies_numpy_input() -> None:
    a = np.array([1.0, 2.0])
    t = Tensor(a)
    a[0] = 99
    assert t.tolist() == [1.0, 2.0]


def test_numpy_interop_is_read_only() -> None:
    t = Tensor([[1.0, 2.0]])
    arr = np.asarray(t)
    assert arr.dtype == np.float32 and arr.shape == (1, 2)
    with pytest.raises(ValueError):
        arr[0, 0] = 5
    with pytest.raises(ValueError):
        t.data()[0, 0] = 5
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert (np.array([1.0, 1.0]) + Tensor([1.0, 2.0])).tolist() == [2.0, 3.0]  # numpy defers
    assert isinstance(np.ones(2) * Tensor([1.0, 2.0]), Tensor)


def test_properties_and_seed_accessors() -> None:
    t = Tensor.zeros([2, 3])
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float32
    assert t.len() == 6 and t.numel() == 6 and len(t) == 2
    assert Tensor.ones([2]).tolist() == [1.0, 1.0]
    assert [r.tolist() for r in Tensor([[1.0, 2.0], [3.0, 4.0]])] == [[1, 2], [3, 4]]
    assert float(Tensor([2.5])) == 2.5 and int(Tensor([2.0])) == 2


def test_ids_are_stable_and_find_grads() -> None:
    x = Tensor([1.0]).requires_grad()
    i = x.id()
    assert x.id() == i and Tensor([1.0]).id() != i
    assert get_grad(i) is None
    (x * 4).backward()
    assert get_grad(i).tolist() == [4.0]
    clear_grad(i)
    assert x.grad() is None
    assert get_grad(10**9) is None


def test_repr_shows_values_shape_dtype_and_grad_state() -> None:
    x = Tensor([1.0, 2.0]).requires_grad()
    assert repr(x) == ("tensor([1., 2.], shape=(2,), dtype=float32, requires_grad=True, "
                       "grad=None)")
    y = x * 2
    assert repr(y).endswith("dtype=float32, grad_fn=mul)")
    y.sum().backward()
    assert "grad=set" in repr(x)
    assert repr(Tensor(np.array(3))) == "tensor(3, shape=(), dtype=int64)"


def test_rust_library_aliases() -> None:
    x = Tensor([[0.5, -0.5]]).requires_grad()
    b = Tensor([1.0, 2.0])
    np.testing.assert_array_equal(x.broadcast_add(b).data(), x.add_broadcast(b).data())
    np.testing.assert_array_equal(x.tanh_().data(), np.tanh(x.data()))
    assert x.requires_grad_enabled() and x.numel() == 2
    assert ap.zeros_like(x).tolist() == [[0, 0]] and ap.ones_like(x).dtype == np.float32


def test_seeded_factories_are_reproducible() -> None:
    a = ap.randn((3, 4), rng=7)
    b = ap.randn((3, 4), rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.data(), b.data())
    np.testing.assert_array_equal(
        a.data(), np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32))
    u = ap.uniform(1000, low=-2, high=3, rng=1, dtype=np.float64, requires_grad=True)
    assert u.dtype == np.float64 and u.requires_grad_enabled()
    assert -2 <= u.data().min() and u.data().max() < 3
    assert ap.zeros(3).tolist() == [0, 0, 0] and ap.ones((1, 2)).shape == (1, 2)
    assert ap.full(2, 7.0).tolist() == [7.0, 7.0]
    assert ap.arange(3).tolist() == [0.0, 1.0, 2.0]


def test_integer_array_gather_of_class_scores() -> None:
    logits = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).requires_grad()
    labels = np.array([2, 0])
    picked = logits[np.arange(2), labels]
    assert picked.tolist() == [3.0, 4.0]
    picked.sum().backward()
    assert logits.grad().tolist() == [[0, 0, 1], [1, 0, 0]]
    t = Tensor([1.0, 2.0, 3.0]).requires_grad()
    t[Tensor(np.array([0, 0, 2]))].sum().backward()  # repeated indices accumulate
    assert t.grad().tolist() == [2.0, 0.0, 1.0]
    m = Tensor([1.0, -2.0, 3.0]).requires_grad()
    m[np.array([True, False, True])].sum().backward()
    assert m.grad().tolist() == [1.0, 0.0, 1.0]


def test_where_with_scalars_and_tensor_condition() -> None:
    x = Tensor([-1.0, 2.0]).requires_grad()
    y = ap.where(x > 0, x, 0.0)
    assert y.tolist() == [0.0, 2.0] and y.dtype == np.float32
    y.sum().backward()
    assert x.grad().tolist() == [0.0, 1.0]


def test_cross_entropy_built_from_ops_has_exact_gradient() -> None:
    rng = np.random.default_rng(0)
    logits_np = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])
    logits = Tensor(logits_np).requires_grad()
    loss = -logits.log_softmax()[np.arange(4), labels].mean()
    loss.backward()
    p = np.exp(logits_np) / np.exp(logits_np).sum(1, keepdims=True)
    expected = (p - np.eye(3)[labels]) / 4
    np.testing.assert_allclose(logits.grad().data(), expected, rtol=1e-12)


def test_scalar_constants_keep_sign_of_zero_and_dtype() -> None:
    x = Tensor([1.0, 2.0])
    assert np.signbit((x * -0.0).data()).all() and not np.signbit((x * 0.0).data()).any()
    assert (Tensor(np.array([1.0])) * 2.0).dtype == np.float64
    assert (x * 2.0).dtype == np.float32 and (x * 2).tolist() == [2.0, 4.0]
