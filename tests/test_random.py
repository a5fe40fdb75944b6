"""Random ops on an explicit generator: dropout and ``rand`` draw the same numbers eagerly and
compiled, from a state that is a graph input updated by every call."""

from __future__ import annotations

import numpy as np
import pytest
from differential import Program, run_differential

import aprender as ap
from aprender import nn, optim
from aprender.errors import CompileError
from aprender.nn import functional as F
from aprender.runtime.random import Generator, default_generator, manual_seed, rand


def test_generator_draws_from_philox_at_its_counter_and_advances() -> None:
    g = Generator(123)
    first, second = rand(2, 3, generator=g, dtype=np.float64), rand(4, generator=g)
    philox = np.random.Philox(key=123, counter=(0, 0, 0, 0))
    np.testing.assert_array_equal(first.data(), np.random.Generator(philox).random((2, 3)))
    philox = np.random.Philox(key=123, counter=(0, 0, 1, 0))
    np.testing.assert_array_equal(second.data(),
                                  np.random.Generator(philox).random(4, dtype=np.float32))
    assert g.get_state().tolist() == [123, 2]
    saved = g.get_state()
    a = rand(5, generator=g)
    g.set_state(saved)
    np.testing.assert_array_equal(rand(5, generator=g).data(), a.data())
    g.manual_seed(123)
    np.testing.assert_array_equal(rand(2, 3, generator=g, dtype=np.float64).data(), first.data())


def test_dropout_masks_scales_and_is_identity_in_eval() -> None:
    x = ap.Tensor(np.arange(1.0, 2001.0)).requires_grad()
    y = F.dropout(x, 0.25, generator=Generator(0))
    kept = y.data() != 0
    assert 0.70 < kept.mean() < 0.80
    np.testing.assert_allclose(y.data()[kept], x.data()[kept] / 0.75)
    y.sum().backward()
    np.testing.assert_allclose(x.grad().data(), kept / 0.75)
    assert F.dropout(x, 0.5, training=False) is x and F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).data(), np.zeros(2000))
    with pytest.raises(ValueError, match="dropout: p must be in"):
        F.dropout(x, 1.5)


def test_compiled_training_with_dropout_equals_eager_step_by_step() -> None:
    def build() -> Program:
        model = nn.Sequential(nn.Linear(4, 16, rng=0, dtype=np.float64), nn.ReLU(),
                              nn.Dropout(0.3, rng=5), nn.Linear(16, 3, rng=1, dtype=np.float64))
        opt = optim.SGD(model.parameters(), lr=0.1)

        def step(x: np.ndarray, y: np.ndarray) -> ap.Tensor:
            opt.zero_grad()
            loss = nn.cross_entropy(model(ap.Tensor(x)), y)
            loss.backward()
            opt.step()
            return loss

        def between(i: int, state: dict) -> None:
            state["model"].train(i != 3)  # one call in eval mode: no mask, no draw

        def args(i: int) -> tuple:
            rng = np.random.default_rng(i)
            return (rng.standard_normal((8, 4)), rng.integers(0, 3, 8)), {}

        return Program(step, {"model": model, "opt": opt}, args, between)

    assert run_differential(build, calls=6) == "equal"


def test_default_generator_is_read_and_advanced_by_compiled_calls() -> None:
    w = ap.Tensor(np.linspace(-1.0, 1.0, 6).reshape(2, 3)).requires_grad()

    def f(x: np.ndarray) -> ap.Tensor:
        h = F.dropout(ap.Tensor(x) @ w, 0.5)
        return h + rand(3, dtype=np.float64)

    fast = ap.compile(f)
    x = np.ones((4, 2))
    for seed in (0, 0, 1):  # the same seed gives the same numbers; a new seed new ones
        manual_seed(seed)
        eager = [f(x).data() for _ in range(3)]
        eager_state = default_generator.get_state()
        manual_seed(seed)
        compiled = [fast(x).data() for _ in range(3)]
        for a, b in zip(eager, compiled, strict=True):
            np.testing.assert_array_equal(a, b)
        assert default_generator.get_state().tolist() == eager_state.tolist()
        assert not np.array_equal(eager[0], eager[1])  # each call draws anew
    assert fast.cache_info()["compiles"] == 1
    assert "random" in fast.ir() and "update" in fast.ir()


def test_numpy_seeded_random_inside_compile_is_refused_fixed_seed_allowed() -> None:
    fresh = ap.compile(lambda x: ap.Tensor(x) + ap.randn((3,)))
    with pytest.raises(CompileError, match="generator"):
        fresh(np.zeros(3))
    fixed = ap.compile(lambda x: ap.Tensor(x) + ap.randn((3,), rng=4, dtype=np.float64))
    np.testing.assert_array_equal(fixed(np.zeros(3)).data(),
                                  np.random.default_rng(4).standard_normal(3))
    g = Generator(9)
    tracked = ap.compile(lambda x: ap.Tensor(x) + ap.randn((3,), generator=g, dtype=np.float64))
    expected = np.random.Generator(np.random.Philox(key=9, counter=(0, 0, 1, 0)))
    tracked(np.zeros(3))
    np.testing.assert_array_equal(tracked(np.zeros(3)).data(),
                                  expected.standard_normal(3))


def test_dropout_on_float16_and_refusals() -> None:
    x = ap.Tensor(np.ones(1000, np.float16))
    y = F.dropout(x, 0.5, generator=Generator(2))
    assert y.dtype == np.float16 and set(np.unique(y.data())) <= {0.0, 2.0}
    with pytest.raises(ap.DTypeError, match="dropout: needs a float input"):
        F.dropout(ap.Tensor(np.ones(3, np.int64)), 0.5)
    layer = nn.Dropout(0.1, True)  # PyTorch's (p, inplace): the second argument is no seed
    assert layer.inplace and layer.generator is None
