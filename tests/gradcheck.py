"""Finite-difference helpers for the tests (float64, central differences)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import aprender as ap
from aprender.autograd import Tensor


def numeric_grads(f: Callable[[list[np.ndarray]], float], arrays: Sequence[np.ndarray],
                  eps: float = 1e-6) -> list[np.ndarray]:
    """Central finite differences of the scalar ``f`` with respect to each array."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        flat, gflat = a.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            hi = f(arrays)
            flat[i] = old - eps
            lo = f(arrays)
            flat[i] = old
            gflat[i] = (hi - lo) / (2 * eps)
        grads.append(g)
    return grads


def weighted_loss(fn: Callable[..., Tensor], weights: np.ndarray) -> Callable[..., Tensor]:
    """``sum(fn(*xs) * weights)``: a scalar whose gradient exercises every output element."""
    return lambda *xs: (fn(*xs) * Tensor(weights)).sum()


def check_first_order(fn: Callable[..., Tensor], arrays: Sequence[np.ndarray],
                      rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """Autograd gradients of ``sum(fn(*xs) * W)`` equal finite differences."""
    with ap.no_grad():
        out = fn(*[Tensor(a) for a in arrays])
    weights = np.random.default_rng(0).uniform(0.5, 1.5, out.shape)
    loss = weighted_loss(fn, weights)
    xs = [Tensor(a).requires_grad() for a in arrays]
    loss(*xs).backward()

    def value(arrs: list[np.ndarray]) -> float:
        with ap.no_grad():
            return loss(*[Tensor(a) for a in arrs]).item()

    for x, expected in zip(xs, numeric_grads(value, arrays), strict=True):
        assert x.grad() is not None
        np.testing.assert_allclose(x.grad().data(), expected, rtol=rtol, atol=atol)


def check_second_order(fn: Callable[..., Tensor], arrays: Sequence[np.ndarray],
                       rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Hessian-vector products from ``grad(create_graph=True)`` equal finite differences of the
    first-order gradients."""
    with ap.no_grad():
        out = fn(*[Tensor(a) for a in arrays])
    rng = np.random.default_rng(1)
    loss = weighted_loss(fn, rng.uniform(0.5, 1.5, out.shape))
    vs = [rng.uniform(-1, 1, np.shape(a)) for a in arrays]

    def directional(xs: list[Tensor]) -> Tensor:
        grads = ap.grad(loss(*xs), xs, create_graph=True)
        total = None
        for g, v in zip(grads, vs, strict=True):
            if g is None:
                continue
            term = (g * Tensor(v)).sum()
            total = term if total is None else total + term
        return total

    xs = [Tensor(a).requires_grad() for a in arrays]
    d = directional(xs)
    if d is None or not d.requires_grad_enabled():
        hvp = [np.zeros_like(a) for a in arrays]  # the op is linear: its second order is zero
    else:
        hvp = [np.zeros_like(a) if g is None else g.data()
               for a, g in zip(arrays, ap.grad(d, xs), strict=True)]

    def value(arrs: list[np.ndarray]) -> float:
        res = directional([Tensor(a).requires_grad() for a in arrs])
        return 0.0 if res is None else res.item()

    for got, expected in zip(hvp, numeric_grads(value, arrays), strict=True):
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
