"""Optimizers against hand-written numpy versions of PyTorch's documented update rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

import aprender as ap
from aprender.autograd import Tensor
from aprender.optim import SGD, Adam, AdamW, CosineAnnealingLR, RMSprop, StepLR, clip_grad_norm_

STEPS = 5


def _grads(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 4)) for _ in range(STEPS)]


def _run(opt_cls, kwargs) -> list[np.ndarray]:
    p = Tensor(np.random.default_rng(9).standard_normal((3, 4))).requires_grad()
    opt = opt_cls([p], **kwargs)
    out = []
    for g in _grads():
        opt.zero_grad()
        (p * Tensor(g)).sum().backward()  # d/dp = g exactly
        opt.step()
        out.append(p.data().copy())
    return out


def _sgd_ref(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    p = np.random.default_rng(9).standard_normal((3, 4))
    buf, out = None, []
    for g in _grads():
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
        out.append(p)
    return out


def _adam_ref(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
              decoupled=False):
    p = np.random.default_rng(9).standard_normal((3, 4))
    m, v, vmax, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    b1, b2 = betas
    for t, g in enumerate(_grads(), start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if amsgrad:
            vmax = np.maximum(vmax, v)
        denom = np.sqrt(vmax if amsgrad else v) / math.sqrt(1 - b2**t) + eps
        p = p - lr / (1 - b1**t) * m / denom
        out.append(p)
    return out


def _rmsprop_ref(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    p = np.random.default_rng(9).standard_normal((3, 4))
    sq, ga, buf, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for g in _grads():
        g = g + weight_decay * p
        sq = alpha * sq + (1 - alpha) * g * g
        if centered:
            ga = alpha * ga + (1 - alpha) * g
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        if momentum:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
        out.append(p)
    return out


@pytest.mark.parametrize(("cls", "kwargs", "ref"), [
    (SGD, {}, lambda: _sgd_ref()),
    (SGD, {"lr": 0.1, "momentum": 0.9}, lambda: _sgd_ref(0.1, 0.9)),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.01},
     lambda: _sgd_ref(0.1, 0.9, 0.5, 0.01)),
    (SGD, {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1},
     lambda: _sgd_ref(0.1, 0.8, 0.0, 0.1, True)),
    (Adam, {}, lambda: _adam_ref()),
    (Adam, {"lr": 0.01, "betas": (0.8, 0.9), "weight_decay": 0.1},
     lambda: _adam_ref(0.01, (0.8, 0.9), weight_decay=0.1)),
    (Adam, {"lr": 0.01, "amsgrad": True}, lambda: _adam_ref(0.01, amsgrad=True)),
    (AdamW, {"lr": 0.01}, lambda: _adam_ref(0.01, weight_decay=1e-2, decoupled=True)),
    (AdamW, {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True},
     lambda: _adam_ref(0.01, weight_decay=0.5, amsgrad=True, decoupled=True)),
    (RMSprop, {}, lambda: _rmsprop_ref()),
    (RMSprop, {"momentum": 0.9, "weight_decay": 0.1}, lambda: _rmsprop_ref(momentum=0.9,
                                                                           weight_decay=0.1)),
    (RMSprop, {"centered": True, "alpha": 0.9}, lambda: _rmsprop_ref(alpha=0.9, centered=True)),
], ids=lambda v: getattr(v, "__name__", None) if isinstance(v, type) else None)
def test_first_steps_match_published_rule(cls, kwargs, ref) -> None:
    for got, expected in zip(_run(cls, kwargs), ref(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


def test_defaults_are_pytorchs() -> None:
    p = [Tensor([1.0]).requires_grad()]
    assert SGD(p).lr == 1e-3 and Adam(p).lr == 1e-3 and RMSprop(p).lr == 1e-2
    assert Adam(p).betas == (0.9, 0.999) and Adam(p).eps == 1e-8
    assert AdamW(p).weight_decay == 1e-2 and RMSprop(p).alpha == 0.99


def test_lr_is_mutable_and_held_in_a_tensor() -> None:
    p = Tensor([1.0]).requires_grad()
    opt = SGD([p], lr=0.5)
    held = opt._lr
    opt.lr = 0.25
    assert opt._lr is held and opt.lr == 0.25
    (p * 2).sum().backward()
    opt.step()
    assert p.tolist() == [0.5]


def test_parameters_without_grad_are_skipped_and_zero_grad_clears() -> None:
    a, b = Tensor([1.0]).requires_grad(), Tensor([1.0]).requires_grad()
    opt = Adam([a, b], lr=0.1)
    (a * 3).sum().backward()
    opt.step()
    assert b.tolist() == [1.0] and a.tolist() != [1.0]
    assert opt.state[1]["step"].item() == 0.0 and opt.state[0]["step"].item() == 1.0
    opt.zero_grad()
    assert a.grad() is None


def test_state_dict_round_trip_continues_identically() -> None:
    def make():
        p = Tensor(np.linspace(-1, 1, 6).reshape(2, 3)).requires_grad()
        return p, Adam([p], lr=0.05, amsgrad=True)

    def train(p, opt, steps):
        for k in range(steps):
            opt.zero_grad()
            ((p - float(k)) ** 2).sum().backward()
            opt.step()

    p1, opt1 = make()
    train(p1, opt1, 3)
    saved_p, saved_opt = p1.data().copy(), opt1.state_dict()
    train(p1, opt1, 2)
    p2, opt2 = make()
    with ap.no_grad():
        p2.assign(saved_p)
    opt2.load_state_dict(saved_opt)
    train(p2, opt2, 2)
    np.testing.assert_array_equal(p1.data(), p2.data())


def test_state_dict_errors_change_nothing() -> None:
    p = Tensor([1.0, 2.0]).requires_grad()
    opt = SGD([p], lr=0.1, momentum=0.9)
    good = opt.state_dict()
    with pytest.raises(ap.StateDictError, match="expected state for 1 parameters"):
        opt.load_state_dict({"state": []})
    bad = {"state": [{"momentum_buffer": np.ones(5)}], "hyper": {"lr": 9}}
    with pytest.raises(ap.ShapeError, match="momentum_buffer.*shape \\[5\\], expected \\[2\\]"):
        opt.load_state_dict(bad)
    assert opt.lr == 0.1
    np.testing.assert_array_equal(opt.state_dict()["state"][0]["momentum_buffer"],
                                  good["state"][0]["momentum_buffer"])


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([])
    with pytest.raises(TypeError, match="leaf tensors that require grad"):
        SGD([Tensor([1.0])])
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([Tensor([1.0]).requires_grad()], nesterov=True)


def test_clip_grad_norm_scales_like_pytorch() -> None:
    a, b = Tensor([3.0, 0.0]).requires_grad(), Tensor([4.0]).requires_grad()
    (a * Tensor([3.0, 0.0])).sum().backward()
    (b * Tensor([4.0])).sum().backward()
    norm = clip_grad_norm_([a, b], 1.0)
    assert norm.item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad().data(), [3 / (5 + 1e-6), 0], rtol=1e-6)
    np.testing.assert_allclose(b.grad().data(), [4 / (5 + 1e-6)], rtol=1e-6)
    norm = clip_grad_norm_([a, b], 10.0)  # already small: unchanged
    np.testing.assert_allclose(b.grad().data(), [4 / (5 + 1e-6)], rtol=1e-6)


def test_schedules() -> None:
    opt = SGD([Tensor([1.0]).requires_grad()], lr=1.0)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        sched.step()
        lrs.append(sched.get_last_lr())
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt2 = SGD([Tensor([1.0]).requires_grad()], lr=0.1)
    cos = CosineAnnealingLR(opt2, T_max=4, eta_min=0.02)
    got = []
    for _ in range(4):
        cos.step()
        got.append(opt2.lr)
    expected = [0.02 + 0.08 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(1, 5)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
