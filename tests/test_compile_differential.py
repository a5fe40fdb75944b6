"""The SPEC checklist for ap.compile: realistic user programs, each run eagerly and compiled.

Every test builds the same world twice (see ``differential.run_differential``): the compiled
world must return what the eager world returns and leave every object in the same state, call
after call, while the user changes things between calls; or raise a clear ``AprenderError``
where the test says the pattern may be refused (``may_refuse=True``).
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import types
from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from differential import Program, run_differential
from hypothesis import given, settings
from hypothesis import strategies as st

import aprender as ap
from aprender import nn, optim

F64 = np.float64


# --- shared pieces ---------------------------------------------------------------------------
def _data(i: int, shape: Any, seed: int = 0) -> np.ndarray:
    """Deterministic float64 data for call ``i``."""
    return np.random.default_rng(1000 * seed + i).standard_normal(shape)


def _batch(i: int, n: int = 8, d: int = 5, k: int = 3, seed: int = 0) -> tuple:
    rng = np.random.default_rng(1000 * seed + i)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def _batches(i: int) -> tuple[tuple, dict]:
    return _batch(i), {}


def _mlp(dtype: Any = F64, rng: int = 0) -> nn.MLP:
    return nn.MLP(5, 8, 3, rng=rng, dtype=dtype)


def _train_step(model: nn.Module, opt: optim.Optimizer, x: np.ndarray, y: np.ndarray) -> Any:
    """The canonical training step."""
    opt.zero_grad()
    loss = nn.cross_entropy(model(ap.Tensor(x)), y)
    loss.backward()
    opt.step()
    return loss


def _training(make_opt: Any, dtype: Any = F64, between: Any = None) -> Program:
    model = _mlp(dtype)
    opt = make_opt(model.parameters())
    return Program(lambda x, y: _train_step(model, opt, x, y), {"model": model, "opt": opt},
                   _batches, between)


def _equal(build: Any, calls: int = 4, **kw: Any) -> None:
    assert run_differential(build, calls, **kw) == "equal"


def _equal_or_refused(build: Any, calls: int = 4) -> None:
    assert run_differential(build, calls, may_refuse=True) in ("equal", "refused")


# --- sanity: programs eager and compiled obviously agree on ----------------------------------
def test_pure_function_times_two() -> None:
    """``x * 2`` on fresh numpy inputs: the harness itself must report equal."""
    _equal(lambda: Program(lambda x: ap.Tensor(x) * 2.0, {}, lambda i: ((_data(i, 3),), {})))


# --- A. cache key and arguments --------------------------------------------------------------
def test_keyword_argument_names() -> None:
    """``f(a, y=b)`` then ``f(a, z=b)``: the keyword's name decides what ``**kw`` holds."""
    def f(a: ap.Tensor, **kw: ap.Tensor) -> ap.Tensor:
        return a * kw["y"] if "y" in kw else a - kw["z"]

    def args(i: int) -> tuple[tuple, dict]:
        return (ap.Tensor(_data(i, 3)),), {"yz"[i % 2]: ap.Tensor(_data(i, 3, seed=1))}

    _equal(lambda: Program(f, {}, args))


def test_dict_keys_change_between_calls() -> None:
    """A feature dict whose keys (not values) change: names decide the sign of each term."""
    def f(feats: dict) -> ap.Tensor:
        terms = [v * (2.0 if k.startswith("pos") else -1.0) for k, v in feats.items()]
        return terms[0] + terms[1]

    def args(i: int) -> tuple[tuple, dict]:
        keys = ("pos_a", "neg_b") if i % 2 == 0 else ("neg_a", "pos_b")
        return ({k: ap.Tensor(_data(i, 3, seed=j)) for j, k in enumerate(keys)},), {}

    _equal(lambda: Program(f, {}, args))


def test_list_then_tuple_argument() -> None:
    """A tree-map style helper that returns the container type it was given."""
    def scale_all(xs: list | tuple) -> list | tuple:
        return type(xs)(x * 2.0 for x in xs)

    def args(i: int) -> tuple[tuple, dict]:
        kind = list if i % 2 == 0 else tuple
        return (kind([ap.Tensor(_data(i, 2)), ap.Tensor(_data(i, 2, seed=1))]),), {}

    _equal(lambda: Program(scale_all, {}, args))


Batch = namedtuple("Batch", "x y")


def test_namedtuple_batch_argument() -> None:
    """A regression step that takes its batch as a namedtuple of numpy arrays."""
    def build() -> Program:
        model = nn.Linear(3, 1, rng=0, dtype=F64)
        opt = optim.SGD(model.parameters(), lr=0.1)

        def step(batch: Batch) -> ap.Tensor:
            opt.zero_grad()
            loss = nn.mse_loss(model(ap.Tensor(batch.x)), batch.y)
            loss.backward()
            opt.step()
            return loss

        return Program(step, {"model": model, "opt": opt},
                       lambda i: ((Batch(_data(i, (4, 3)), _data(i, (4, 1), seed=1)),), {}))

    _equal(build)


@dataclass
class WeightedBatch:
    x: ap.Tensor
    weight: float


def test_dataclass_argument() -> None:
    """A dataclass holding a tensor and a Python float weight, new each call."""
    def build() -> Program:
        model = nn.Linear(3, 2, rng=0, dtype=F64)
        return Program(lambda b: (model(b.x) * b.weight).sum(), {"model": model},
                       lambda i: ((WeightedBatch(ap.Tensor(_data(i, (4, 3))), 1.0 / (i + 1)),), {}))

    _equal(build)


@dataclass
class LossConfig:
    scale: float
    temperature: float


def test_config_object_argument_mutated_between_calls() -> None:
    """The same config object passed on every call, its fields changed between calls."""
    def build() -> Program:
        cfg = LossConfig(scale=1.0, temperature=1.0)

        def f(x: ap.Tensor, cfg: LossConfig) -> ap.Tensor:
            return (x / cfg.temperature).softmax().sum_axis(0) * cfg.scale

        def between(i: int, s: dict) -> None:
            s["cfg"].scale, s["cfg"].temperature = 1.0 + i, 2.0 ** -i

        return Program(f, {"cfg": cfg}, lambda i: ((ap.Tensor(_data(i, (4, 3))), cfg), {}),
                       between)

    _equal(build)


def test_ordered_dict_argument_and_result() -> None:
    """An OrderedDict of named activations in, an OrderedDict of the same names out."""
    def f(feats: OrderedDict) -> OrderedDict:
        out = OrderedDict()
        for k, v in feats.items():
            out[k] = v.tanh()
        return out

    def args(i: int) -> tuple[tuple, dict]:
        return (OrderedDict(a=ap.Tensor(_data(i, 2)), b=ap.Tensor(_data(i, 2, seed=1))),), {}

    _equal(lambda: Program(f, {}, args))


def test_numpy_float32_scalar_argument() -> None:
    """``np.float32(v)`` for v = 1..4 used in arithmetic (numpy scalars from a data pipeline)."""
    def args(i: int) -> tuple[tuple, dict]:
        return (ap.Tensor(_data(0, 3).astype(np.float32)), np.float32(i + 1)), {}

    _equal(lambda: Program(lambda x, s: x * s + s, {}, args))


def test_str_argument_selects_branch() -> None:
    """An activation name passed as a string (built at run time, as a config parser would)."""
    def f(x: ap.Tensor, act: str) -> ap.Tensor:
        return x.relu() if act == "relu" else x.tanh() if act == "tanh" else x.sigmoid()

    names = ["relu", "tanh", "relu", "sigmoid", "tanh"]
    _equal(lambda: Program(f, {}, lambda i: ((ap.Tensor(_data(i, 3)), "".join(names[i])), {})),
           calls=5)


def test_positive_then_negative_zero_scalar() -> None:
    """``0.0`` then ``-0.0``: ``1 / (x * s)`` is +inf then -inf; ``ap.Tensor(s)`` keeps the sign."""
    def f(x: ap.Tensor, s: float) -> tuple:
        return 1.0 / (x * s), ap.Tensor(s)

    def args(i: int) -> tuple[tuple, dict]:
        return (ap.Tensor(np.abs(_data(i, 3)) + 0.5), [0.0, -0.0][i % 2]), {}

    with np.errstate(divide="ignore"):
        _equal(lambda: Program(f, {}, args))


def test_bool_flag_argument() -> None:
    """``normalize=True/False`` selects a branch."""
    def f(x: ap.Tensor, normalize: bool) -> ap.Tensor:
        y = (x * 2.0).exp()
        return y / y.sum() if normalize else y

    _equal(lambda: Program(f, {}, lambda i: ((ap.Tensor(_data(i, 3)), i % 2 == 0), {})))


def test_optional_tensor_argument() -> None:
    """``bias=None`` on some calls and a tensor on others."""
    def build() -> Program:
        w = ap.Tensor(_data(99, (3, 2)))

        def f(x: ap.Tensor, bias: ap.Tensor | None = None) -> ap.Tensor:
            y = x @ w
            return y if bias is None else y + bias

        def args(i: int) -> tuple[tuple, dict]:
            bias = None if i % 2 == 0 else ap.Tensor(_data(i, 2, seed=1))
            return (ap.Tensor(_data(i, (4, 3))),), {"bias": bias}

        return Program(f, {"w": w}, args)

    _equal(build)


def test_python_int_reshape_size() -> None:
    """A Python int used as a reshape size (number of groups)."""
    _equal(lambda: Program(lambda x, n: x.reshape(n, -1).sum_axis(1), {},
                           lambda i: ((ap.Tensor(_data(i, 12)), [2, 3, 4, 6][i]), {})))


def test_batch_size_changes() -> None:
    """The last mini-batch of an epoch is smaller: batch sizes 8, 5, 8, 3."""
    def build() -> Program:
        p = _training(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9))
        p.args = lambda i: (_batch(i, n=[8, 5, 8, 3][i]), {})
        return p

    _equal(build)


# --- B. state binding ------------------------------------------------------------------------
def test_buffer_argument_updated_in_place() -> None:
    """``f(buf, x)`` adds into whichever buffer it is given; two buffers alternate."""
    def build() -> Program:
        bufs = [ap.zeros(3, dtype=F64), ap.zeros(3, dtype=F64)]

        def accumulate(buf: ap.Tensor, x: ap.Tensor) -> ap.Tensor:
            with ap.no_grad():
                buf.add_(x)
            return buf.sum()

        return Program(accumulate, {"bufs": bufs},
                       lambda i: ((bufs[i % 2], ap.Tensor(_data(i, 3))), {}))

    _equal(build)


def test_parameter_list_argument_manual_sgd() -> None:
    """Manual SGD over the parameter list it is given; two models take turns."""
    def build() -> Program:
        models = [nn.Linear(3, 1, rng=0, dtype=F64), nn.Linear(3, 1, rng=1, dtype=F64)]

        def sgd_step(params: list, x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            w, b = params
            for p in params:
                ap.clear_grad(p.id())
            loss = ((ap.Tensor(x) @ w + b - ap.Tensor(y)) ** 2).mean()
            loss.backward()
            with ap.no_grad():
                for p in params:
                    p.sub_(p.grad(), alpha=0.1)
            return loss

        def args(i: int) -> tuple[tuple, dict]:
            m = models[i % 2]
            return ([m.weight, m.bias], _data(i, (4, 3)), _data(i, (4, 1), seed=1)), {}

        return Program(sgd_step, {"models": models}, args)

    _equal(build)


def _momentum_world() -> tuple[nn.MLP, optim.SGD]:
    model = _mlp()
    return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def test_step_through_lambda() -> None:
    """``ap.compile(lambda x, y: step(model, opt, x, y))``."""
    def build() -> Program:
        model, opt = _momentum_world()
        return Program(lambda x, y: _train_step(model, opt, x, y),
                       {"model": model, "opt": opt}, _batches)

    _equal(build)


def test_step_through_functools_partial() -> None:
    """``ap.compile(functools.partial(step, model, opt))``."""
    def build() -> Program:
        model, opt = _momentum_world()
        return Program(functools.partial(_train_step, model, opt), {"model": model, "opt": opt},
                       _batches)

    _equal(build)


class Trainer:
    """Holds the model and optimizer; ``__call__`` and ``step`` run one training step."""

    def __init__(self) -> None:
        self.model, self.opt = _momentum_world()

    def __call__(self, x: np.ndarray, y: np.ndarray) -> ap.Tensor:
        return _train_step(self.model, self.opt, x, y)

    def step(self, x: np.ndarray, y: np.ndarray) -> ap.Tensor:
        return _train_step(self.model, self.opt, x, y)


def test_step_through_callable_object() -> None:
    """``ap.compile(trainer)`` where ``Trainer`` defines ``__call__``."""
    def build() -> Program:
        trainer = Trainer()
        return Program(trainer, {"trainer": trainer}, _batches)

    _equal(build)


def test_step_through_bound_method() -> None:
    """``ap.compile(trainer.step)``."""
    def build() -> Program:
        trainer = Trainer()
        return Program(trainer.step, {"trainer": trainer}, _batches)

    _equal(build)


def test_lr_set_to_zero_stops_training() -> None:
    """``opt.lr = 0`` before the third call: parameters must stop moving."""
    def between(i: int, s: dict) -> None:
        if i == 2:
            s["opt"].lr = 0.0

    _equal(lambda: _training(lambda ps: optim.Adam(ps, lr=0.01), between=between), calls=5)


def test_sgd_momentum_with_dampening_buffers_evolve() -> None:
    """SGD momentum buffers (with dampening: the first step differs) evolve call after call."""
    _equal(lambda: _training(lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1)),
           calls=5)


class PrivatelyScaled(nn.Module):
    """A layer whose output scale lives in a private, non-parameter tensor ``self._scale``."""

    def __init__(self) -> None:
        self.fc = nn.Linear(3, 2, rng=0, dtype=F64)
        self._scale = ap.Tensor(np.ones(2))

    def forward(self, x: ap.Tensor) -> ap.Tensor:
        return self.fc(x) * self._scale


def test_private_tensor_attribute_updated_between_calls() -> None:
    """``self._scale`` is changed in place between calls (e.g. by a calibration routine)."""
    def build() -> Program:
        model = PrivatelyScaled()

        def between(i: int, s: dict) -> None:
            s["model"]._scale.assign(np.array([1.0 + i, 2.0 - i]))

        return Program(model, {"model": model}, lambda i: ((ap.Tensor(_data(i, (4, 3))),), {}),
                       between)

    _equal(build)


def test_tensor_default_argument_updated_in_place() -> None:
    """``def f(x, w=W)`` where ``W`` is changed in place between calls."""
    def build() -> Program:
        weights = ap.Tensor(np.ones(3))

        def f(x: ap.Tensor, w: ap.Tensor = weights) -> ap.Tensor:
            return (x * w).sum()

        def between(i: int, s: dict) -> None:
            s["w"].add_(float(i))

        return Program(f, {"w": weights}, lambda i: ((ap.Tensor(_data(i, 3)),), {}), between)

    _equal(build)


class Holder:
    """A plain object holding a parameter."""

    def __init__(self, w: ap.Tensor) -> None:
        self.w = w


def test_deeply_nested_parameter() -> None:
    """A parameter reached as ``cfg["a"]["b"][0].w``, trained, and rescaled between calls."""
    def build() -> Program:
        cfg = {"a": {"b": [Holder(ap.Tensor(_data(7, (3, 1))).requires_grad())]}}
        opt = optim.SGD([cfg["a"]["b"][0].w], lr=0.1)

        def step(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            opt.zero_grad()
            loss = ((ap.Tensor(x) @ cfg["a"]["b"][0].w - ap.Tensor(y)) ** 2).mean()
            loss.backward()
            opt.step()
            return loss

        def between(i: int, s: dict) -> None:
            if i == 2:
                with ap.no_grad():
                    s["cfg"]["a"]["b"][0].w.mul_(0.5)

        return Program(step, {"cfg": cfg, "opt": opt},
                       lambda i: ((_data(i, (4, 3)), _data(i, (4, 1), seed=1)), {}), between)

    _equal(build)


def test_numpy_mask_in_closure_edited_in_place() -> None:
    """A numpy mask in a closure, edited in place between calls, used as ``x * mask`` and as
    ``ap.Tensor(mask)``."""
    def build() -> Program:
        mask = np.ones(3)

        def f(x: ap.Tensor) -> ap.Tensor:
            return (x * mask).sum_axis(0) + ap.Tensor(mask)

        def between(i: int, s: dict) -> None:
            s["mask"][...] = 1.0
            s["mask"][i % 3] = 0.0

        return Program(f, {"mask": mask}, lambda i: ((ap.Tensor(_data(i, (4, 3))),), {}), between)

    _equal(build)


def test_gradients_accumulate_without_zero_grad() -> None:
    """Gradient accumulation: the step calls ``backward()`` but never zeroes ``grad()``."""
    def build() -> Program:
        model = nn.Linear(3, 2, rng=0, dtype=F64)

        def f(x: np.ndarray) -> ap.Tensor:
            loss = (model(ap.Tensor(x)) ** 2).mean()
            loss.backward()
            return loss

        return Program(f, {"model": model}, lambda i: ((_data(i, (4, 3)),), {}))

    _equal(build)


def test_clip_grad_norm_inside_step() -> None:
    """``optim.clip_grad_norm_`` between ``backward()`` and ``opt.step()``; returns the norm."""
    def build() -> Program:
        model = _mlp()
        opt = optim.Adam(model.parameters(), lr=0.01)

        def step(x: np.ndarray, y: np.ndarray) -> tuple:
            opt.zero_grad()
            loss = nn.cross_entropy(model(ap.Tensor(x)), y)
            loss.backward()
            norm = optim.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            return loss, norm

        return Program(step, {"model": model, "opt": opt}, _batches)

    _equal(build)


def test_update_only_compiled_step() -> None:
    """``ap.compile(opt.step)`` after an eager forward and ``backward()`` each call."""
    def build() -> Program:
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def between(i: int, s: dict) -> None:
            s["opt"].zero_grad()
            x, y = _batch(i)
            nn.cross_entropy(s["model"](ap.Tensor(x)), y).backward()

        return Program(opt.step, {"model": model, "opt": opt}, lambda i: ((), {}), between)

    _equal(build)


def test_update_only_step_clips_and_returns_norm() -> None:
    """A compiled update phase (clip, ``opt.step()``, return the norm) after an eager
    forward and ``backward()`` each call."""
    def build() -> Program:
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def update() -> ap.Tensor:
            norm = optim.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return norm

        def between(i: int, s: dict) -> None:
            s["opt"].zero_grad()
            x, y = _batch(i)
            nn.cross_entropy(s["model"](ap.Tensor(x)), y).backward()

        return Program(update, {"model": model, "opt": opt}, lambda i: ((), {}), between)

    _equal(build)


def test_gan_like_two_losses_two_optimizers() -> None:
    """A GAN step: discriminator loss on ``fake.detach()``, then generator loss, two optimizers."""
    def build() -> Program:
        gen = nn.Linear(2, 3, rng=0, dtype=F64)
        disc = nn.Linear(3, 1, rng=1, dtype=F64)
        opt_g = optim.SGD(gen.parameters(), lr=0.1)
        opt_d = optim.SGD(disc.parameters(), lr=0.1)

        def step(z: np.ndarray, real: np.ndarray) -> tuple:
            opt_d.zero_grad()
            fake = gen(ap.Tensor(z))
            d_loss = ((disc(ap.Tensor(real)) - 1.0) ** 2).mean() + (disc(fake.detach()) ** 2).mean()
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = ((disc(fake) - 1.0) ** 2).mean()
            g_loss.backward()
            opt_g.step()
            return d_loss, g_loss

        return Program(step, {"gen": gen, "disc": disc, "opt_g": opt_g, "opt_d": opt_d},
                       lambda i: ((_data(i, (4, 2)), _data(i, (4, 3), seed=1)), {}))

    _equal(build)


def test_two_backward_calls_accumulate_into_same_parameters() -> None:
    """Two losses, two ``backward()`` calls into the same parameters, one ``opt.step()``."""
    def build() -> Program:
        model = nn.Linear(3, 2, rng=0, dtype=F64)
        opt = optim.SGD(model.parameters(), lr=0.1)

        def step(x: np.ndarray) -> tuple:
            opt.zero_grad()
            loss1 = (model(ap.Tensor(x)) ** 2).mean()
            loss1.backward()
            loss2 = model(ap.Tensor(x)).abs().mean()
            loss2.backward()
            opt.step()
            return loss1, loss2

        return Program(step, {"model": model, "opt": opt}, lambda i: ((_data(i, (4, 3)),), {}))

    _equal(build)


def test_tensor_created_inside_and_updated_in_place() -> None:
    """``t = ap.zeros(3); t.add_(x); return t``."""
    def f(x: ap.Tensor) -> ap.Tensor:
        t = ap.zeros(3, dtype=F64)
        t.add_(x)
        return t

    _equal(lambda: Program(f, {}, lambda i: ((ap.Tensor(_data(i, 3)),), {})))


def test_fresh_parameter_created_and_returned() -> None:
    """An init helper: ``ap.Tensor(x * scale).requires_grad()`` returns a new leaf parameter."""
    _equal(lambda: Program(lambda x: ap.Tensor(x * 0.1).requires_grad(), {},
                           lambda i: ((_data(i, 3),), {})))


def test_detach_of_input_computation() -> None:
    """``ap.compile(lambda x: (ap.Tensor(x) * 2).detach())`` with a different x each call."""
    _equal(lambda: Program(lambda x: (ap.Tensor(x) * 2.0).detach(), {},
                           lambda i: ((_data(i, 3),), {})))


def test_step_returns_loss_and_detached_logits_dict() -> None:
    """A training step returning ``{"loss": loss, "logits": logits.detach()}``."""
    def build() -> Program:
        model, opt = _momentum_world()

        def step(x: np.ndarray, y: np.ndarray) -> dict:
            opt.zero_grad()
            logits = model(ap.Tensor(x))
            loss = nn.cross_entropy(logits, y)
            loss.backward()
            opt.step()
            return {"loss": loss, "logits": logits.detach()}

        return Program(step, {"model": model, "opt": opt}, _batches)

    _equal(build)


# --- C. grad mode ----------------------------------------------------------------------------
def test_no_grad_block_inside_step_stops_gradient() -> None:
    """``with no_grad(): t = w * 2`` then ``loss = (w * t * x).sum()``: no gradient through t."""
    def build() -> Program:
        w = ap.Tensor(np.full(3, 0.5)).requires_grad()
        opt = optim.SGD([w], lr=0.1)

        def step(x: ap.Tensor) -> ap.Tensor:
            opt.zero_grad()
            with ap.no_grad():
                t = w * 2.0
            loss = (w * t * x).sum()
            loss.backward()
            opt.step()
            return loss

        return Program(step, {"w": w, "opt": opt}, lambda i: ((ap.Tensor(_data(i, 3)),), {}))

    _equal(build)


def test_output_computed_under_no_grad_has_no_grad() -> None:
    """A forward returning logits and, computed under ``no_grad``, their softmax."""
    def build() -> Program:
        model = nn.Linear(3, 2, rng=0, dtype=F64)

        def f(x: ap.Tensor) -> tuple:
            logits = model(x)
            with ap.no_grad():
                probs = logits.softmax()
            return logits, probs

        return Program(f, {"model": model}, lambda i: ((ap.Tensor(_data(i, (4, 3))),), {}))

    _equal(build)


def test_forward_called_under_no_grad_and_outside_alternately() -> None:
    """Evaluation (under ``no_grad``) and training-mode calls of one compiled forward."""
    def build() -> Program:
        model = _mlp()
        return Program(model, {"model": model}, lambda i: ((ap.Tensor(_batch(i)[0]),), {}),
                       call_context=lambda i: ap.no_grad() if i % 2 else contextlib.nullcontext())

    _equal(build)


# --- D. aliasing -----------------------------------------------------------------------------
def test_reshape_view_sees_later_in_place_update() -> None:
    """``v = buf.reshape(2, 2); buf.add_(x); return v.sum_axis(0)``: v is a view of buf."""
    def build() -> Program:
        buf = ap.zeros(4, dtype=F64)

        def f(x: ap.Tensor) -> ap.Tensor:
            with ap.no_grad():
                v = buf.reshape(2, 2)
                buf.add_(x)
                return v.sum_axis(0)

        return Program(f, {"buf": buf}, lambda i: ((ap.Tensor(_data(i, 4)),), {}))

    _equal(build)


def test_transpose_taken_before_step_is_a_view() -> None:
    """``wT = w.T`` taken before ``opt.step()`` and returned and used after it."""
    def build() -> Program:
        w = ap.Tensor(_data(5, (3, 2))).requires_grad()
        opt = optim.SGD([w], lr=0.1)

        def step(x: np.ndarray) -> tuple:
            opt.zero_grad()
            w_t = w.T
            loss = ((ap.Tensor(x) @ w) ** 2).mean()
            loss.backward()
            opt.step()
            return loss, w_t, (w_t * 1.0).sum()

        return Program(step, {"w": w, "opt": opt}, lambda i: ((_data(i, (4, 3)),), {}))

    _equal(build)


def test_result_does_not_alias_numpy_input() -> None:
    """``ap.Tensor(x).mul(1.0)``; then the caller overwrites its numpy ``x`` in place."""
    def between(i: int, s: dict) -> None:
        if i > 0:
            s["_args"][0][0][...] = 1000.0  # the previous call's x

    _equal(lambda: Program(lambda x: ap.Tensor(x).mul(1.0), {},
                           lambda i: ((_data(i, 3),), {}), between))


def test_returned_fresh_zeros_mutated_by_caller() -> None:
    """Returning ``ap.zeros(3)``; the caller does ``out.add_(1.0)`` before the next call."""
    _equal(lambda: Program(lambda x: (ap.zeros(3, dtype=F64), x * 2.0), {},
                           lambda i: ((ap.Tensor(_data(i, 3)),), {}), mutate_results=True))


def test_add_zero_keeps_numpy_sign_of_zero() -> None:
    """``x + 0.0`` where x holds -0.0: numpy gives +0.0 (compared with ``np.signbit``)."""
    _equal(lambda: Program(lambda x: x + 0.0, {},
                           lambda i: ((ap.Tensor(np.array([-0.0, 0.5 * i, -0.0])),), {})))


def test_returning_captured_parameter_is_the_parameter() -> None:
    """``return model.weight``: eagerly the result IS the parameter object, call after call."""
    def make() -> tuple[nn.Linear, Any]:
        model = nn.Linear(3, 2, rng=0, dtype=F64)
        return model, lambda x: (model.weight, (x @ model.weight).sum())

    (ma, fa), (mb, fb) = make(), make()
    fast = ap.compile(fb)
    for i in range(3):
        got_a, got_b = fa(ap.Tensor(_data(i, (4, 3)))), fast(ap.Tensor(_data(i, (4, 3))))
        assert got_a[0] is ma.weight
        assert got_b[0] is mb.weight, f"call {i}: compiled result is not the parameter"
        with ap.no_grad():
            ma.weight.add_(1.0)
            mb.weight.add_(1.0)


def _accumulating(step: Any, between: Any = None) -> Program:
    w = ap.Tensor(np.linspace(-1.0, 1.0, 3)).requires_grad()
    return Program(lambda x: step(w, ap.Tensor(x)), {"w": w},
                   lambda i: ((np.arange(3.0) + i,), {}), between)


def test_gradients_accumulate_in_place_across_calls_without_zero_grad() -> None:
    """PyTorch adds into ``.grad`` in place: the gradient returned by call 0 is the object call
    1 adds into, and a gradient held between calls sees the sum."""
    def step(w: ap.Tensor, x: ap.Tensor) -> Any:
        (x * w * w).sum().backward()
        return w.grad()

    def hold(i: int, state: dict) -> None:
        state[f"held_{i}"] = state["w"].grad()

    _equal(lambda: _accumulating(step), calls=4)
    _equal(lambda: _accumulating(step, hold), calls=4)


def test_two_backwards_in_one_step_return_the_first_gradient_object() -> None:
    def step(w: ap.Tensor, x: ap.Tensor) -> Any:
        ap.clear_grad(w.id())
        (x * w).sum().backward()
        first = w.grad()
        (x * w * w).sum().backward()
        return first, w.grad(), first * 1.0

    _equal(lambda: _accumulating(step), calls=3)


def test_a_gradient_set_by_hand_is_replaced_not_added_into() -> None:
    def step(w: ap.Tensor, x: ap.Tensor) -> Any:
        (x * w).sum().backward()
        return w.grad()

    def set_by_hand(i: int, state: dict) -> None:
        if i % 2:
            state["w"]._grad = ap.Tensor(np.ones(3))  # not the engine's: replaced next time

    _equal(lambda: _accumulating(step, set_by_hand), calls=5)


# --- E. Python side effects ------------------------------------------------------------------
def test_scheduler_step_inside_compiled_step() -> None:
    """``sched.step()`` (StepLR) at the end of the compiled training step."""
    def build() -> Program:
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1)
        sched = optim.StepLR(opt, step_size=2, gamma=0.5)

        def step(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            loss = _train_step(model, opt, x, y)
            sched.step()
            return loss

        return Program(step, {"model": model, "opt": opt, "sched": sched}, _batches)

    _equal_or_refused(build, calls=5)


class Warmup:
    """Linear learning-rate warmup driven by a Python counter."""

    def __init__(self, opt: optim.Optimizer, base: float, steps: int) -> None:
        self.opt, self.base, self.steps, self.count = opt, base, steps, 0

    def tick(self) -> None:
        self.count += 1
        self.opt.lr = self.base * min(1.0, self.count / self.steps)


def test_warmup_counter_sets_lr_inside_step() -> None:
    """A warmup object increments its counter and sets ``opt.lr`` inside the step."""
    def build() -> Program:
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1)
        warm = Warmup(opt, 0.1, 3)

        def step(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            warm.tick()
            return _train_step(model, opt, x, y)

        return Program(step, {"model": model, "opt": opt, "warm": warm}, _batches)

    _equal_or_refused(build, calls=5)


def test_rebinding_module_weight_between_calls() -> None:
    """``model.fc1.weight = Tensor(...)`` (loading new weights by rebinding) before call 2."""
    def build() -> Program:
        model = _mlp()

        def f(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            model.zero_grad()
            loss = nn.cross_entropy(model(ap.Tensor(x)), y)
            loss.backward()
            return loss

        def between(i: int, s: dict) -> None:
            if i == 2:
                s["model"].fc1.weight = ap.Tensor(_data(3, (5, 8))).requires_grad()

        return Program(f, {"model": model}, _batches, between)

    _equal(build)


GLOBAL_SCALE: ap.Tensor | None = None


def _uses_global_scale(x: ap.Tensor) -> ap.Tensor:
    return (x * GLOBAL_SCALE).sum_axis(0)


def test_global_tensor_rebound_between_calls() -> None:
    """A module-level global tensor, rebound (``GLOBAL_SCALE = ...``) before call 2."""
    def build() -> Program:
        # each world gets its own module globals, so the two worlds do not share the global
        g = {"__builtins__": builtins, "GLOBAL_SCALE": ap.Tensor(np.ones(3))}
        fn = types.FunctionType(_uses_global_scale.__code__, g, "_uses_global_scale")

        def between(i: int, s: dict) -> None:
            if i == 2:
                s["globals"]["GLOBAL_SCALE"] = ap.Tensor(np.full(3, 2.0))

        return Program(fn, {"globals": g}, lambda i: ((ap.Tensor(_data(i, (4, 3))),), {}),
                       between)

    _equal(build)


def test_dropout_model_switched_from_eval_to_train() -> None:
    """Compiled in ``eval()`` mode, then ``model.train()``: seeded Dropout must apply (or the
    call must refuse, as training-mode Dropout is not compiled)."""
    def build() -> Program:
        model = nn.Sequential(nn.Linear(4, 4, rng=0, dtype=F64), nn.Dropout(0.5, rng=0))

        def between(i: int, s: dict) -> None:
            s["model"].train(i >= 2)

        return Program(model, {"model": model}, lambda i: ((ap.Tensor(_data(i, (3, 4))),), {}),
                       between)

    _equal_or_refused(build)


class CenterInTraining(nn.Module):
    """Centres with the batch mean in training mode only (a BatchNorm-like branch)."""

    def __init__(self) -> None:
        self.fc = nn.Linear(4, 3, rng=0, dtype=F64)

    def forward(self, x: ap.Tensor) -> ap.Tensor:
        h = self.fc(x)
        return h - h.mean_axis(0, keepdims=True) if self.training else h


def test_module_branching_on_training_flag() -> None:
    """``model.eval()`` for the first calls, ``model.train()`` after."""
    def build() -> Program:
        model = CenterInTraining()

        def between(i: int, s: dict) -> None:
            s["model"].train(i >= 2)

        return Program(model, {"model": model}, lambda i: ((ap.Tensor(_data(i, (3, 4))),), {}),
                       between)

    _equal(build)


def test_freezing_a_layer_between_calls() -> None:
    """``p.requires_grad(False)`` on the first layer's parameters before call 2."""
    def between(i: int, s: dict) -> None:
        if i == 2:
            s["model"].fc1.weight.requires_grad(False)
            s["model"].fc1.bias.requires_grad(False)

    _equal(lambda: _training(lambda ps: optim.SGD(ps, lr=0.1), between=between))


def test_weight_decay_changed_between_calls() -> None:
    """``opt.weight_decay = 0.1`` on an SGD optimizer before call 2."""
    def between(i: int, s: dict) -> None:
        if i == 2:
            s["opt"].weight_decay = 0.1

    _equal(lambda: _training(lambda ps: optim.SGD(ps, lr=0.1), between=between))


def test_closure_config_dict_changed_between_calls() -> None:
    """``cfg["scale"] = 3.0`` in a config dict the step reads."""
    def build() -> Program:
        model = nn.Linear(3, 1, rng=0, dtype=F64)
        opt = optim.SGD(model.parameters(), lr=0.1)
        cfg = {"scale": 1.0}

        def step(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            opt.zero_grad()
            loss = nn.mse_loss(model(ap.Tensor(x)), y) * cfg["scale"]
            loss.backward()
            opt.step()
            return loss

        def between(i: int, s: dict) -> None:
            if i == 2:
                s["cfg"]["scale"] = 3.0

        return Program(step, {"model": model, "opt": opt, "cfg": cfg},
                       lambda i: ((_data(i, (4, 3)), _data(i, (4, 1), seed=1)), {}), between)

    _equal(build)


def test_closure_float_rebound_through_nonlocal_setter() -> None:
    """A closure float ``scale`` rebound by a ``nonlocal`` setter before call 2."""
    def build() -> Program:
        model = nn.Linear(3, 2, rng=0, dtype=F64)
        scale = 1.0

        def set_scale(value: float) -> None:
            nonlocal scale
            scale = value

        def f(x: ap.Tensor) -> ap.Tensor:
            return model(x) * scale

        def between(i: int, s: dict) -> None:
            if i == 2:
                s["set_scale"](2.5)

        return Program(f, {"model": model, "set_scale": set_scale},
                       lambda i: ((ap.Tensor(_data(i, (4, 3))),), {}), between)

    _equal(build)


def _log_inputs(i: int) -> tuple[tuple, dict]:
    """Positive inputs, except call 2 (a negative entry: ``log`` gives nan)."""
    x = np.abs(_data(i, (4, 5))) + 0.1
    if i == 2:
        x[0, 0] = -1.0
    return (x, _batch(i, n=4)[1]), {}


def _anomaly_world(inside: bool) -> Program:
    model = _mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
        # zero_grad last, so that a nan in the forward raises before anything changed
        with ap.detect_anomaly() if inside else contextlib.nullcontext():
            loss = nn.cross_entropy(model(ap.Tensor(x).log()), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
        return loss

    return Program(step, {"model": model, "opt": opt}, _log_inputs,
                   call_context=None if inside else lambda i: ap.detect_anomaly())


def test_detect_anomaly_inside_step() -> None:
    """``with ap.detect_anomaly():`` inside the step; call 2 produces nan (eager raises)."""
    with np.errstate(invalid="ignore"):
        _equal_or_refused(lambda: _anomaly_world(inside=True))


def test_whole_compiled_call_under_detect_anomaly() -> None:
    """The caller wraps each call in ``ap.detect_anomaly()``; call 2 produces nan."""
    with np.errstate(invalid="ignore"):
        _equal_or_refused(lambda: _anomaly_world(inside=False))


# --- F. created state and nesting ------------------------------------------------------------
class LazyRunningMean(nn.Module):
    """Creates its running-mean buffer on the first call, then accumulates into it."""

    def __init__(self) -> None:
        self.fc = nn.Linear(3, 2, rng=0, dtype=F64)
        self.running_mean: ap.Tensor | None = None

    def forward(self, x: ap.Tensor) -> ap.Tensor:
        h = self.fc(x)
        with ap.no_grad():
            if self.running_mean is None:
                self.running_mean = ap.zeros(2, dtype=F64)
            self.running_mean.mul_(0.9).add_(h.mean_axis(0) * 0.1)
        return h


def test_lazily_created_running_mean_buffer() -> None:
    """A module that creates a buffer on its first call and updates it on every call."""
    def build() -> Program:
        model = LazyRunningMean()
        return Program(model, {"model": model}, lambda i: ((ap.Tensor(_data(i, (4, 3))),), {}))

    _equal_or_refused(build)


class BatchNormLike(nn.Module):
    """Normalises with batch statistics and keeps a running mean updated under ``no_grad``."""

    def __init__(self, n: int) -> None:
        self.weight = ap.Tensor(np.ones(n)).requires_grad()
        self.running_mean = ap.zeros(n, dtype=F64)

    def forward(self, x: ap.Tensor) -> ap.Tensor:
        mean = x.mean_axis(0, keepdims=True)
        with ap.no_grad():
            self.running_mean.mul_(0.9).add_(mean.reshape(-1) * 0.1)
        return (x - mean) * self.weight


def test_running_statistics_buffer_in_training_step() -> None:
    """A BatchNorm-like running-mean buffer updated inside a compiled training step."""
    def build() -> Program:
        model = nn.Sequential(nn.Linear(5, 4, rng=0, dtype=F64), BatchNormLike(4), nn.ReLU(),
                              nn.Linear(4, 3, rng=1, dtype=F64))
        opt = optim.SGD(model.parameters(), lr=0.1)
        return Program(lambda x, y: _train_step(model, opt, x, y), {"model": model, "opt": opt},
                       _batches)

    _equal(build)


def test_compiled_function_called_inside_compiled_function() -> None:
    """A compiled forward (``ap.compile(model)``) used inside a compiled training step."""
    worlds = iter([False, True])  # run_differential builds the eager world first

    def build() -> Program:
        model = nn.Linear(5, 3, rng=0, dtype=F64)
        opt = optim.SGD(model.parameters(), lr=0.1)
        forward = ap.compile(model) if next(worlds) else model
        return Program(lambda x, y: _train_step(forward, opt, x, y),
                       {"model": model, "opt": opt}, _batches)

    _equal(build)


def _backward_after_input_edit(compiled: bool) -> list[bool]:
    """For two calls: ``out = forward(x)``, ``x`` edited in place, did ``backward()`` raise?"""
    model = nn.Linear(3, 2, rng=0, dtype=F64)
    forward = ap.compile(model) if compiled else model
    raised = []
    for i in range(2):
        x = ap.Tensor(_data(i, (4, 3)))
        loss = (forward(x) ** 2).sum()
        with ap.no_grad():
            x.add_(1.0)
        try:
            loss.backward()
            raised.append(False)
        except ap.GraphError:
            raised.append(True)
    return raised


def test_compiled_forward_input_changed_before_eager_backward_raises() -> None:
    """``out = fast(x)``; ``x`` changed in place; ``loss.backward()`` must raise GraphError (the
    version check) as it does eagerly, on the tracing call and on a cached call."""
    eager, compiled = _backward_after_input_edit(False), _backward_after_input_edit(True)
    assert eager == [True, True]
    assert compiled == eager, f"backward raised per call: eager {eager}, compiled {compiled}"


# --- G. inspection and graph management inside compiled functions ----------------------------
def test_in_place_edit_of_tensor_made_from_input() -> None:
    """``t = ap.Tensor(x); with no_grad(): t.add_(1.0)`` inside a compiled function."""
    def f(x: np.ndarray) -> ap.Tensor:
        t = ap.Tensor(x)
        with ap.no_grad():
            t.add_(1.0)
        return t * 2.0

    _equal_or_refused(lambda: Program(f, {}, lambda i: ((_data(i, 3),), {})))


def test_clear_graph_at_end_of_step() -> None:
    """``ap.clear_graph()`` at the end of a compiled training step."""
    def build() -> Program:
        model, opt = _momentum_world()

        def step(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            loss = _train_step(model, opt, x, y)
            ap.clear_graph()
            return loss

        return Program(step, {"model": model, "opt": opt}, _batches)

    _equal_or_refused(build)


def test_autograd_clear_graph_at_start_of_step() -> None:
    """``ap.autograd.clear_graph()`` at the start of a compiled training step."""
    def build() -> Program:
        model, opt = _momentum_world()

        def step(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            ap.autograd.clear_graph()
            return _train_step(model, opt, x, y)

        return Program(step, {"model": model, "opt": opt}, _batches)

    _equal_or_refused(build)


# --- realistic training loops ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_mlp_adam_training_loop(dtype: Any) -> None:
    """``nn.MLP`` + Adam + cross-entropy, six steps on changing batches."""
    def build() -> Program:
        p = _training(lambda ps: optim.Adam(ps, lr=0.01), dtype=dtype)
        p.args = lambda i: ((_batch(i, seed=3)[0].astype(dtype), _batch(i, seed=3)[1]), {})
        return p

    _equal(build, calls=6)


def test_sgd_nesterov_weight_decay() -> None:
    """SGD with Nesterov momentum and weight decay."""
    _equal(lambda: _training(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                                   weight_decay=1e-3)), calls=5)


def test_adamw_amsgrad() -> None:
    """AdamW with AMSGrad."""
    _equal(lambda: _training(lambda ps: optim.AdamW(ps, lr=0.01, amsgrad=True)), calls=5)


def test_rmsprop_centered_momentum() -> None:
    """RMSprop, centered, with momentum."""
    _equal(lambda: _training(lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True)),
           calls=5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_layernorm_gelu_model(dtype: Any) -> None:
    """Linear, LayerNorm, GELU, Linear with Adam and label smoothing."""
    def build() -> Program:
        model = nn.Sequential(nn.Linear(5, 8, rng=0, dtype=dtype), nn.LayerNorm(8, dtype=dtype),
                              nn.GELU(), nn.Linear(8, 3, rng=1, dtype=dtype))
        opt = optim.Adam(model.parameters(), lr=0.01)

        def step(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            opt.zero_grad()
            loss = nn.cross_entropy(model(ap.Tensor(x.astype(dtype))), y, label_smoothing=0.1)
            loss.backward()
            opt.step()
            return loss

        return Program(step, {"model": model, "opt": opt}, _batches)

    _equal(build, calls=5)


def test_returned_gradient_survives_next_step() -> None:
    """A step returning ``w.grad()`` for logging; the caller keeps the previous ones."""
    def build() -> Program:
        w = ap.Tensor(_data(1, (3, 2))).requires_grad()
        opt = optim.SGD([w], lr=0.1)

        def step(x: np.ndarray) -> tuple:
            opt.zero_grad()
            loss = ((ap.Tensor(x) @ w) ** 2).mean()
            loss.backward()
            opt.step()
            return loss, w.grad()

        return Program(step, {"w": w, "opt": opt}, lambda i: ((_data(i, (4, 3)),), {}))

    _equal(build)


# --- hypothesis: nested argument structures --------------------------------------------------
@dataclass(frozen=True)
class TensorSpec:
    """Stands for a tensor in a generated structure (each world makes its own)."""

    shape: tuple[int, ...]
    seed: int
    requires_grad: bool


def _materialize(tree: Any) -> Any:
    if isinstance(tree, TensorSpec):
        t = ap.Tensor(np.random.default_rng(tree.seed).standard_normal(tree.shape))
        return t.requires_grad(tree.requires_grad)
    if isinstance(tree, dict):
        return {k: _materialize(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_materialize(v) for v in tree)
    return tree


def _variant(tree: Any, mask: int) -> Any:
    """The same tensors in a changed structure: per bit of ``mask``, renamed dict keys, lists
    and tuples swapped, numbers changed (``-0.0`` for ``0.0``), strings and bools changed."""
    if isinstance(tree, dict):
        return {(k + "z" if mask & 1 else k): _variant(v, mask) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        kind = type(tree) if not mask & 2 else (tuple if isinstance(tree, list) else list)
        return kind(_variant(v, mask) for v in tree)
    if isinstance(tree, bool):
        return tree != bool(mask & 8)
    if isinstance(tree, int | float) and mask & 4:
        return -0.0 if tree == 0 else tree + 1
    if isinstance(tree, str) and mask & 8:
        return tree[::-1] + "c"
    return tree


def _sum_structure(x: ap.Tensor, tree: Any) -> tuple:
    """A generic walk: ``x.sum()`` plus every tensor's sum times every number found, each
    tensor weighted by where it sits (the length of the dict keys above it, -1 per tuple); a
    string scales the total by its length + 1, a bool True doubles it. Also returns the
    structure with its tensors doubled (non-tensor leaves dropped)."""
    found: list[tuple[ap.Tensor, float]] = []
    numbers: list[float] = []
    factors: list[float] = []

    def walk(node: Any, weight: float) -> Any:
        if isinstance(node, ap.Tensor):
            found.append((node, weight))
            return node * 2.0
        if isinstance(node, bool):
            factors.append(2.0 if node else 1.0)
        elif isinstance(node, int | float):
            numbers.append(float(node))
        elif isinstance(node, str):
            factors.append(len(node) + 1.0)
        elif isinstance(node, dict):
            pairs = [(k, walk(v, weight * len(k))) for k, v in node.items()]
            return {k: item for k, item in pairs if item is not None}
        elif isinstance(node, list | tuple):
            items = [walk(v, -weight if isinstance(node, tuple) else weight) for v in node]
            return type(node)(item for item in items if item is not None)
        return None

    mirror = walk(tree, 1.0)
    total = x.sum()
    for t, weight in found:
        total = total + t.sum() * weight
        for n in numbers:
            total = total + t.sum() * n
    for f in factors:
        total = total * f
    return total, [] if mirror is None else mirror


_LEAVES = st.one_of(
    st.builds(TensorSpec, st.sampled_from([(), (3,), (2, 3)]), st.integers(0, 1000),
              st.booleans()),
    st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False),
    st.integers(-3, 3),
    st.booleans(),
    st.text("abc", max_size=3),
    st.none(),
)
_TREES = st.recursive(
    _LEAVES,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.lists(children, max_size=3).map(tuple),
                               st.dictionaries(st.text("xyz", min_size=1, max_size=2), children,
                                               max_size=3)),
    max_leaves=8,
)


@settings(max_examples=25, deadline=None)
@given(base=_TREES, mask=st.integers(0, 15), other=st.one_of(st.none(), _TREES))
def test_hypothesis_nested_argument_structures(base: Any, mask: int, other: Any) -> None:
    """One compiled function called with a generated structure, then the same tensors in a
    changed structure (keys, container types, numbers, strings), then maybe a third one."""
    trees = [base, _variant(base, mask)] + ([] if other is None else [other])

    def args(i: int) -> tuple[tuple, dict]:
        return (ap.Tensor(_data(i, 3)), _materialize(trees[i])), {}

    _equal(lambda: Program(_sum_structure, {}, args), calls=len(trees))
