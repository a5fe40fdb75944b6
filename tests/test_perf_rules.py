"""Planning rules of issue 12 (``compiler/passes/planning.py``): what each emits, and that the
compiled step still equals eager."""

from __future__ import annotations

import re

import numpy as np
import pytest

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor

RNG = np.random.default_rng(0)


def _step(model: nn.MLP, opt: ap.optim.SGD):
    def step(x, labels):
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), labels)
        loss.backward()
        opt.step()
        return loss

    return step


def _pair(dtype=np.float32):
    models = [nn.MLP(6, 8, 4, rng=3, dtype=dtype) for _ in range(2)]
    opts = [ap.optim.SGD(m.parameters(), lr=0.1) for m in models]
    return (_step(models[0], opts[0]), models[0]), (ap.compile(_step(models[1], opts[1])),
                                                    models[1])


def _run_both(dtype=np.float32, steps=3):
    (eager, m_e), (compiled, m_c) = _pair(dtype)
    x = RNG.standard_normal((5, 6)).astype(dtype)
    labels = RNG.integers(0, 4, 5)
    datas = [p._data for p in m_c.parameters()]
    for _ in range(steps):
        le, lc = eager(x, labels), compiled(x, labels)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=1e-5)
    for pe, pc in zip(m_e.parameters(), m_c.parameters(), strict=True):
        np.testing.assert_allclose(pc._data, pe._data, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pc._grad._data, pe._grad._data, rtol=1e-5, atol=1e-6)
    # updates are written into the parameters' own arrays
    assert all(p._data is d for p, d in zip(m_c.parameters(), datas, strict=True))
    return compiled


def test_relu_mask_comes_from_the_kept_output() -> None:
    src = _run_both().source()
    masks = re.findall(r"greater\((v_\w+), ", src)
    assert masks and all(m.startswith("v_relu") for m in masks), masks
    # the pre-activation dies at the ReLU, which writes over it in place
    pairs = re.findall(r"v_add_\d+ = add\(.*?out=(buf\d+)\).*\n.*maximum\(v_add_\d+, 0, "
                       r"out=(buf\d+)\)", src)
    assert len(pairs) == 2 and all(a == r for a, r in pairs), pairs


def test_relu_masks_keeps_other_comparisons() -> None:
    def f(x):
        return (x.relu() * (x > 1.0)).sum()
    c = ap.compile(f)
    x = Tensor(RNG.standard_normal((3, 4)).astype(np.float32))
    np.testing.assert_allclose(c(x).item(), f(x).item(), rtol=1e-6)
    assert re.search(r"greater\(v_x, ", c.source())     # x > 1 is not relu(x) > 1


def test_relu_mask_rule_is_exact_for_nan_and_signed_zero() -> None:
    x = np.array([np.nan, -0.0, 0.0, -1.0, 2.0, np.inf, -np.inf], np.float32)
    np.testing.assert_array_equal(np.maximum(x, 0) > 0, x > 0)


def test_mean_cross_entropy_total_is_one_dot() -> None:
    src = _run_both().source()
    assert re.search(r"= dot\(v_\w+_log_softmax_flat, v_one_hot_\w+_flat, out=buf\d+\)", src)
    assert "add.reduce(v_cross_entropy" not in src


@pytest.mark.parametrize("neg", [True, False])
def test_product_totals_rule_and_where_it_stays_out(neg) -> None:
    a = Tensor(RNG.standard_normal((4, 3)).astype(np.float32))
    b = Tensor(RNG.standard_normal((4, 3)).astype(np.float32))

    def f(a, b):
        rows = (a * b).sum(axis=1)
        return (-rows if neg else rows).sum()

    c = ap.compile(f)
    np.testing.assert_allclose(c(a, b).item(), f(a, b).item(), rtol=1e-5)
    assert "dot(v_a_flat, v_b_flat" in c.source()

    def g(a, b):  # the row sums are also returned: kept
        rows = (a * b).sum(axis=1)
        return rows.sum(), rows

    c = ap.compile(g)
    got, want = c(a, b), g(a, b)
    np.testing.assert_allclose(got[0].item(), want[0].item(), rtol=1e-5)
    assert "_flat" not in c.source()

    def h(a, col):  # broadcasting product: kept
        return (a * col).sum(axis=1).sum()

    col = Tensor(RNG.standard_normal((4, 1)).astype(np.float32))
    c = ap.compile(h)
    np.testing.assert_allclose(c(a, col).item(), h(a, col).item(), rtol=1e-5)
    assert "_flat" not in c.source()


def test_product_total_of_exactly_zero_keeps_eagers_sign() -> None:
    a = Tensor(np.array([[1.0], [-1.0]]))
    b = Tensor(np.ones((2, 1)))

    def f(a, b):
        return (-(a * b).sum(1)).sum()

    got = ap.compile(f)(a, b).item()
    assert got == 0.0 and np.copysign(1.0, got) == np.copysign(1.0, f(a, b).item()) == 1.0
