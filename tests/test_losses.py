"""Losses (``aprender.nn.functional`` and the loss modules): PyTorch's semantics and values,
class-index targets as graph inputs when compiled, and clear errors for bad arguments.

Values marked "PyTorch" were computed once with torch 2.x (float64) and are hard-coded; the op
cases in ``cases_losses.py`` check every loss against numpy formulas and finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from cases_losses import ce_probs_ref, ce_ref, log_softmax

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.errors import AprenderError
from aprender.ir.ops.nn import CLASS_TARGETS, NNMethods
from aprender.nn import functional as F

X = np.array([[1.0, -0.5, 2.0], [0.25, 0.75, -1.0], [3.0, 0.0, -2.0], [-1.5, 1.5, 0.5]])
Y = np.array([2, -100, 0, 1])
W = np.array([0.5, 2.0, 1.5])


# --- values and gradients as PyTorch ---------------------------------------------------------
def test_cross_entropy_weight_ignore_smoothing_matches_pytorch() -> None:
    x = Tensor(X).requires_grad()
    loss = F.cross_entropy(x, Y, weight=W, label_smoothing=0.25)
    assert loss.item() == pytest.approx(0.7634911734797458, rel=1e-14)  # PyTorch
    loss.backward()
    np.testing.assert_allclose(x.grad().data(), [  # PyTorch
        [0.08208402455443628, -0.02102697262066151, -0.061057051933774746], [0.0, 0.0, 0.0],
        [0.06344255295207493, -0.03332189499042405, -0.030120657961650844],
        [0.005679554023030712, -0.09336543167997277, 0.08768587765694211]], rtol=1e-13)


def test_cross_entropy_default_ignores_minus_100_and_divides_by_the_counted() -> None:
    x = Tensor(X).requires_grad()
    loss = F.cross_entropy(x, Y)
    assert loss.item() == pytest.approx(0.25851216133267213, rel=1e-14)  # PyTorch
    loss.backward()
    p = np.exp(log_softmax(X, 1))
    expected = (p - np.eye(3)[np.where(Y >= 0, Y, 0)]) / 3
    expected[1] = 0.0  # the ignored row gets no gradient
    np.testing.assert_allclose(x.grad().data(), expected, rtol=1e-13, atol=1e-16)


def test_all_targets_ignored_gives_nan_mean_and_zero_sum() -> None:
    y = np.full(4, -100)
    with np.errstate(invalid="ignore"):
        assert np.isnan(F.cross_entropy(Tensor(X), y).item())
        assert np.isnan(F.nll_loss(Tensor(X), y).item())
    assert F.cross_entropy(Tensor(X), y, reduction="sum").item() == 0.0
    np.testing.assert_array_equal(F.cross_entropy(Tensor(X), y, reduction="none").data(),
                                  np.zeros(4))


def test_ignore_index_may_be_a_class() -> None:
    y = np.array([0, 1, 1, 2])
    got = F.cross_entropy(Tensor(X), y, ignore_index=1, label_smoothing=0.1, weight=W)
    assert got.item() == pytest.approx(ce_ref(X, y, W, 1, smoothing=0.1), rel=1e-13)


def test_probability_targets_weight_and_smoothing_divide_by_samples() -> None:
    p = np.random.default_rng(0).dirichlet(np.ones(3), size=4)
    got = F.cross_entropy(Tensor(X), p, weight=W, label_smoothing=0.2)
    assert got.item() == pytest.approx(ce_probs_ref(X, p, W, smoothing=0.2), rel=1e-13)
    # hard one-hot probabilities give the class-index loss
    onehot = np.eye(3)[[2, 0, 0, 1]]
    assert F.cross_entropy(Tensor(X), onehot).item() == pytest.approx(
        F.cross_entropy(Tensor(X), np.array([2, 0, 0, 1])).item(), rel=1e-14)


def test_nd_logits_equal_flattened_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 5))
    y = rng.integers(0, 3, (2, 4, 5))
    y[0, 1, 2] = -100
    rows = x.transpose(0, 2, 3, 1).reshape(-1, 3)
    for kw in ({}, {"weight": W, "label_smoothing": 0.1}, {"reduction": "sum"}):
        got = F.cross_entropy(Tensor(x), y, **kw).item()
        assert got == pytest.approx(F.cross_entropy(Tensor(rows), y.reshape(-1), **kw).item(),
                                    rel=1e-13)
    none = F.cross_entropy(Tensor(x), y, reduction="none")
    assert none.shape == (2, 4, 5) and none.data()[0, 1, 2] == 0.0


def test_unbatched_logits() -> None:
    loss = F.cross_entropy(Tensor(X[0]), np.array(2))
    assert loss.shape == () and loss.item() == pytest.approx(-log_softmax(X[0], 0)[2])
    assert F.nll_loss(Tensor(X[0]), np.array(1)).item() == pytest.approx(0.5)


def test_nll_loss_picks_weighted_log_probabilities() -> None:
    logp = log_softmax(X, 1)
    got = F.nll_loss(Tensor(logp), Y, W)
    counted = [0, 2, 3]
    expected = -(W[Y[counted]] * logp[counted, Y[counted]]).sum() / W[Y[counted]].sum()
    assert got.item() == pytest.approx(expected, rel=1e-14)
    assert nn.NLLLoss(weight=W)(Tensor(logp), Y).item() == pytest.approx(expected, rel=1e-14)


def test_binary_cross_entropy_clamps_logs_and_gradient_as_pytorch() -> None:
    p = Tensor(np.array([0.0, 1.0, 0.25, 1e-30])).requires_grad()
    t = np.array([1.0, 0.0, 0.5, 0.0])
    loss = F.binary_cross_entropy(p, t, reduction="none")
    np.testing.assert_allclose(loss.data(), [100.0, 100.0, 0.8369882167858358, 1e-30],
                               rtol=1e-14)  # PyTorch
    loss.sum().backward()
    np.testing.assert_allclose(p.grad().data(), [  # PyTorch (its floor is a float32 1e-12)
        -1000000003995.8029, 1000000003995.8029, -1.3333333333333333, 1.0000000039958028e-18],
        rtol=1e-14)


def test_binary_cross_entropy_with_logits_is_stable_and_exact() -> None:
    z = Tensor(np.array([50.0, -50.0, 0.0, 30.0])).requires_grad()
    t = np.array([0.0, 1.0, 0.5, 1.0])
    loss = F.binary_cross_entropy_with_logits(z, t, pos_weight=np.array(3.0), reduction="none")
    np.testing.assert_allclose(loss.data(), [50.0, 150.0, 1.3862943611198906,
                                             2.8072868906519213e-13], rtol=1e-14)  # PyTorch
    loss.sum().backward()
    np.testing.assert_allclose(z.grad().data()[:3], [1.0, -3.0, -0.5], rtol=1e-14)
    # -3 sigmoid(-30): both PyTorch (3 (sigmoid(30) - 1)) and the sigmoid op's tanh form lose
    # digits there (about 2e-4 relative)
    assert z.grad().data()[3] == pytest.approx(-3.0 / (1.0 + np.exp(30.0)), rel=1e-3)


def test_regression_losses_and_weights() -> None:
    rng = np.random.default_rng(2)
    a, b, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.uniform(0, 1, (3, 4))
    assert F.mse_loss(Tensor(a), b, weight=w).item() == pytest.approx(
        ((a - b) ** 2 * w).sum() / w.sum(), rel=1e-13)
    assert F.l1_loss(Tensor(a), b, weight=w, reduction="sum").item() == pytest.approx(
        (np.abs(a - b) * w).sum(), rel=1e-13)
    d = a - b
    huber = np.where(np.abs(d) < 0.5, 0.5 * d * d, 0.5 * (np.abs(d) - 0.25))
    assert F.huber_loss(Tensor(a), b, delta=0.5, weight=w).item() == pytest.approx(
        (huber * w).mean(), rel=1e-13)  # PyTorch's weighted Huber mean is the plain mean
    assert F.smooth_l1_loss(Tensor(a), b, beta=0.0).item() == pytest.approx(np.abs(d).mean())
    assert nn.SmoothL1Loss(beta=0.5)(Tensor(a), b).item() == pytest.approx(
        (huber / 0.5).mean(), rel=1e-13)
    assert nn.HuberLoss(delta=0.5)(Tensor(a), b).item() == pytest.approx(huber.mean())


def test_legacy_size_average_and_reduce_follow_pytorch() -> None:
    a, b = X, X[::-1].copy()
    mean, total = ((a - b) ** 2).mean(), ((a - b) ** 2).sum()
    assert F.mse_loss(Tensor(a), b, size_average=False).item() == pytest.approx(total)
    assert F.mse_loss(Tensor(a), b, False, True).item() == pytest.approx(total)
    assert F.mse_loss(Tensor(a), b, reduce=False).shape == (4, 3)
    assert nn.MSELoss(True, True).reduction == "mean"
    assert nn.MSELoss(size_average=False).reduction == "sum"
    assert nn.MSELoss("sum")(Tensor(a), b).item() == pytest.approx(total)  # the seed's style
    assert nn.NLLLoss("none").reduction == "none" and nn.NLLLoss("none").weight is None
    assert F.mse_loss(Tensor(a), b).item() == pytest.approx(mean)


# --- modules ---------------------------------------------------------------------------------
def test_loss_modules_match_the_functions_and_keep_weights_as_buffers() -> None:
    ce = nn.CrossEntropyLoss(weight=W, ignore_index=0, label_smoothing=0.1, reduction="sum")
    y = np.array([2, 0, 0, 1])
    assert ce(Tensor(X), y).item() == pytest.approx(
        F.cross_entropy(Tensor(X), y, W, ignore_index=0, label_smoothing=0.1,
                        reduction="sum").item(), rel=1e-15)
    assert list(ce.state_dict()) == ["weight"] and ce.parameters() == []
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    bce = nn.BCEWithLogitsLoss(pos_weight=np.array([1.0, 2.0, 3.0]))
    assert list(bce.state_dict()) == ["pos_weight"]
    t = np.array([[0.0, 1.0, 1.0]] * 4)
    assert bce(Tensor(X), t).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(Tensor(X), t, pos_weight=[1.0, 2.0, 3.0]).item())
    probs = 1 / (1 + np.exp(-X))
    assert nn.BCELoss(weight=W)(Tensor(probs), t).item() == pytest.approx(
        F.binary_cross_entropy(Tensor(probs), t, W).item())
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(nn.L1Loss(reduction="sum")) == "L1Loss(reduction='sum')"


def test_seed_cross_entropy_keeps_its_signature_and_ignores_nothing() -> None:
    y = np.array([2, 0, 0, 1])
    assert nn.cross_entropy(Tensor(X), y, 0.1, "sum").item() == pytest.approx(
        F.cross_entropy(Tensor(X), y, label_smoothing=0.1, reduction="sum").item(), rel=1e-15)
    with pytest.raises(ap.ShapeError, match=r"labels must lie in \[0, 3\)"):
        nn.cross_entropy(Tensor(X), Y)  # -100 is no class for the seed's function
    assert nn.cross_entropy(Tensor(X), Y, ignore_index=-100).item() == pytest.approx(
        F.cross_entropy(Tensor(X), Y).item())


def test_one_hot_from_functional_with_the_seed_dtype_argument() -> None:
    assert nn.one_hot(np.array([1, 0]), 3).dtype == np.int64
    got = nn.one_hot(np.array([1, 0]), 3, np.float32)
    assert got.dtype == np.float32 and got.tolist() == [[0, 1, 0], [1, 0, 0]]


# --- compiled: class indices are graph inputs ------------------------------------------------
def _step(model: nn.Module, opt: ap.optim.Optimizer, loss_fn: object) -> object:
    def step(x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = loss_fn(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss
    return step


@pytest.mark.parametrize("loss_fn,ignored", [
    (lambda z, y: F.cross_entropy(z, y), -100),
    (lambda z, y: F.cross_entropy(z, y, W, label_smoothing=0.2), -100),
    (lambda z, y: F.cross_entropy(z, y, ignore_index=1, label_smoothing=0.2), 1),
    (lambda z, y: F.nll_loss(z.log_softmax(1), y, W), -100),
    (lambda z, y: nn.cross_entropy(z, y), 0),
], ids=["default", "weight_smoothing", "ignore_class", "nll", "seed"])
def test_compiled_training_step_takes_targets_as_inputs(loss_fn: object, ignored: int) -> None:
    worlds = []
    for _ in range(2):
        model = nn.MLP(4, 8, 3, rng=0, dtype=np.float64)
        opt = ap.optim.SGD(model.parameters(), lr=0.5)
        worlds.append((model, _step(model, opt, loss_fn)))
    fast = ap.compile(worlds[1][1])
    rng = np.random.default_rng(0)
    for i in range(4):
        x = rng.standard_normal((6, 4))
        y = rng.integers(0, 3, 6)
        y[i] = ignored
        eager, compiled = worlds[0][1](x, y), fast(x, y)
        assert compiled.item() == pytest.approx(eager.item(), rel=1e-12)
    for pe, pc in zip(worlds[0][0].parameters(), worlds[1][0].parameters(), strict=True):
        np.testing.assert_allclose(pc.data(), pe.data(), rtol=1e-12)
    assert fast.stats()["compiles"] == 1  # new targets each call, one compiled graph


def test_compiled_target_out_of_range_raises_when_it_runs() -> None:
    fast = ap.compile(lambda z, y: F.cross_entropy(z, y))
    z = Tensor(X)
    assert fast(z, np.array([0, 1, 2, -100])).item() == pytest.approx(
        F.cross_entropy(z, np.array([0, 1, 2, -100])).item())
    with pytest.raises(AprenderError, match=r"must lie in \[0, 3\) \(or ignore_index=-100\), "
                                            r"got 3"):
        fast(z, np.array([0, 1, 3, -100]))


# --- the class_targets op --------------------------------------------------------------------
@pytest.mark.parametrize("shape,axis", [((4,), 1), ((2, 3), 1), ((2, 3), 0), ((2, 3), 2),
                                        ((), 0)])
def test_class_targets_values_and_shape_rule(shape: tuple, axis: int) -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(-1, 4, shape)
    got = NNMethods.class_targets(Tensor(t), 4, axis, ignore_index=-1, dtype=np.float64)
    expected = np.moveaxis((t[..., None] == np.arange(4)).astype(np.float64), -1, axis)
    np.testing.assert_array_equal(got.data(), expected)
    assert CLASS_TARGETS.infer(Tensor(t), num_classes=4, axis=axis, ignore_index=-1,
                               dtype=np.dtype(np.float64)) == (got.shape, got.dtype)


def test_class_targets_checks_range_and_dtype() -> None:
    with pytest.raises(ap.ShapeError, match=r"must lie in \[0, 3\), got -1"):
        NNMethods.class_targets(Tensor(np.array([0, -1])), 3)
    with pytest.raises(ap.DTypeError, match="must be integers"):
        NNMethods.class_targets(Tensor(np.array([0.0])), 3)
    with pytest.raises(ap.ShapeError, match="axis 3 is out of range"):
        NNMethods.class_targets(Tensor(np.array([0, 1])), 3, axis=3)


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("call,error,message", [
    (lambda: F.cross_entropy(Tensor(X), np.array([0, 1, 2])), ap.ShapeError,
     r"cross_entropy: target int64\[3\] does not fit input float64\[4, 3\]: class indices "
     r"need shape \[4\]"),
    (lambda: F.cross_entropy(Tensor(X), np.array([0.0, 1, 2, 1])), ap.DTypeError,
     r"cross_entropy: class-index targets must be integers, got float64\[4\]"),
    (lambda: F.cross_entropy(Tensor(X), np.zeros((4, 3), np.int64)), ap.DTypeError,
     r"cross_entropy: a target of the input's shape holds class probabilities and must be "
     r"float, got int64\[4, 3\]"),
    (lambda: F.cross_entropy(Tensor(X), np.array([0, 1, 5, 1])), ap.ShapeError,
     r"cross_entropy: .*must lie in \[0, 3\) \(or ignore_index=-100\), got 5"),
    (lambda: F.cross_entropy(Tensor(X), Y, weight=np.ones(4)), ap.ShapeError,
     r"cross_entropy: weight must hold one value per class \(3 for input float64\[4, 3\]\), "
     r"got float64\[4\]"),
    (lambda: F.cross_entropy(Tensor(X), np.eye(3)[[0, 1, 2, 0]], ignore_index=0), ValueError,
     "ignore_index is not supported for class-probability targets"),
    (lambda: F.cross_entropy(Tensor(X), Y, label_smoothing=1.5), ValueError,
     r"label_smoothing must be in \[0, 1\]"),
    (lambda: F.cross_entropy(Tensor(X), Y, reduction="avg"), ValueError,
     "cross_entropy: reduction must be one of"),
    (lambda: F.cross_entropy(Tensor(np.array(1.0)), np.array(0)), ap.ShapeError,
     "cross_entropy: input must have a class dimension"),
    (lambda: F.cross_entropy(Tensor(np.zeros((2, 3), np.int64)), np.array([0, 1])),
     ap.DTypeError, r"cross_entropy: input must be a float tensor, got int64\[2, 3\]"),
    (lambda: F.nll_loss(Tensor(X), np.array([0, -1, 1, 2])), ap.ShapeError,
     r"nll_loss: .*got -1"),
    (lambda: F.nll_loss(Tensor(X), np.zeros((4, 3))), ap.DTypeError,
     r"nll_loss: class-index targets must be integers"),
    (lambda: F.binary_cross_entropy(Tensor(np.array([0.5, 1.5])), np.array([1.0, 0.0])),
     ap.ShapeError, "all elements of input should be between 0 and 1"),
    (lambda: F.binary_cross_entropy(Tensor(np.array([0.5, 0.5])), np.array([1.0, 2.0])),
     ap.ShapeError, "all elements of target should be between 0 and 1"),
    (lambda: F.binary_cross_entropy(Tensor(np.full(3, 0.5)), np.ones(4)), ap.ShapeError,
     r"binary_cross_entropy: input float64\[3\] and target float64\[4\] differ in shape"),
    (lambda: F.binary_cross_entropy_with_logits(Tensor(X), np.ones((4, 3)),
                                                pos_weight=np.ones(2)), ap.ShapeError,
     r"pos_weight float64\[2\] does not broadcast to the input float64\[4, 3\]"),
    (lambda: F.mse_loss(Tensor(X), np.ones((4, 3)), weight=np.ones(3)), ap.ShapeError,
     r"mse_loss: weight float64\[3\] and input float64\[4, 3\] must have the same shape"),
    (lambda: F.l1_loss(Tensor(X), np.ones(3)), ap.ShapeError, "l1_loss: .*differ in shape"),
])
def test_bad_arguments_raise_clear_errors(call: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()
