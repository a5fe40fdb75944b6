"""compile's refusals, guards, check mode and in-place updates in the IR (the differential
corpus in test_compile_differential.py compares whole programs)."""

from __future__ import annotations

import types

import numpy as np
import pytest

import aprender as ap
from aprender import nn, optim
from aprender.autograd import Tensor
from aprender.errors import CompileError


def test_check_mode_catches_state_the_walk_cannot_see() -> None:
    config = types.ModuleType("config")  # another module's attribute: not walked, not guarded
    config.scale = 2.0

    def f(x: np.ndarray) -> Tensor:
        return Tensor(x) * Tensor(np.full(3, config.scale))

    x = np.ones(3)
    checked = ap.compile(f, check=True)
    assert checked(x).tolist() == [2.0, 2.0, 2.0]
    config.scale = 3.0
    with pytest.raises(CompileError, match="differs from the eager call"):
        checked(x)
    unchecked = ap.compile(f)
    assert unchecked(x).tolist() == [3.0, 3.0, 3.0]
    config.scale = 4.0
    assert unchecked(x).tolist() == [3.0, 3.0, 3.0]  # the documented limit check mode catches


def test_guards_name_places_and_misses_say_old_and_new() -> None:
    w = Tensor(np.array([1.0, 2.0])).requires_grad()
    cfg = {"scale": 2.0}
    fast = ap.compile(lambda x: (Tensor(x) * w).sum() * cfg["scale"])
    x = np.array([1.0, 1.0])
    assert fast(x).item() == 6.0
    guards = fast.guards()
    assert "cfg['scale'] == 2.0" in guards and "w is <tensor float64[2]" in guards
    assert "w._rg is True" in guards
    cfg["scale"] = 3.0
    assert fast(x).item() == 9.0
    assert fast.cache_info()["miss_reasons"][-1] == "cfg['scale'] == 2.0: 2.0 -> 3.0"
    with ap.no_grad():
        fast(x)
    assert fast.cache_info()["miss_reasons"][-1] == "grad mode: True -> False"


def test_unsupported_argument_types_are_refused_by_name() -> None:
    class Box:
        value = 1.0

    with pytest.raises(CompileError, match=r"test_compile_trust.*Box"):
        ap.compile(lambda b: Tensor([b.value]))(Box())


@pytest.mark.parametrize("body, match", [
    (lambda buf, x: buf.reshape(2, 2).add_(x), "in-place update of a view"),
    (lambda buf, x: buf[x > 1.0], "boolean mask"),
    (lambda buf, x: buf.add(x).item(), "reading a tensor's value"),
])
def test_refusals_name_the_problem_and_change_nothing(body, match) -> None:
    buf = Tensor(np.arange(4.0))

    def f(x: np.ndarray) -> Tensor:
        with ap.no_grad():
            return body(buf, Tensor(np.ones((2, 2))) if "reshape" in repr(body) else x)

    fast = ap.compile(f)
    with pytest.raises(ap.AprenderError, match=match):
        fast(np.ones(4))
    assert buf.tolist() == [0.0, 1.0, 2.0, 3.0] and buf._vc[0] == 0
    assert fast.cache_info()["compiles"] == 0


def test_index_arrays_are_inputs_read_on_every_call() -> None:
    table = Tensor(np.arange(12.0).reshape(4, 3)).requires_grad()

    def step(rows: np.ndarray) -> Tensor:
        picked = table[rows] + table[[0, 0]].sum() + table[np.arange(2), np.array([2, 0])].sum()
        picked.sum().backward()
        return picked

    fast = ap.compile(step)
    for rows in (np.array([1, 1, 3]), np.array([0, 2, 2]), np.array([3, 0, 1])):
        table._grad = None
        eager = step(rows)
        eager_grad = table.grad().data().copy()
        table._grad = None
        got = fast(rows)
        np.testing.assert_array_equal(got.data(), eager.data())
        np.testing.assert_array_equal(table.grad().data(), eager_grad)
    assert fast.cache_info()["compiles"] == 1
    assert "index" in fast.ir() and "unindex" in fast.ir()


def test_detect_anomaly_inside_refuses_and_around_runs_eagerly() -> None:
    w = Tensor(np.array([1.0, -1.0])).requires_grad()

    def f(x: np.ndarray) -> Tensor:
        with ap.detect_anomaly():
            return (Tensor(x) * w).sum()

    with pytest.raises(CompileError, match="detect_anomaly"):
        ap.compile(f)(np.ones(2))
    g = ap.compile(lambda x: (Tensor(x) * w).log().sum())
    with ap.detect_anomaly(), pytest.raises(ap.AnomalyError, match="log"):
        g(np.ones(2))
    assert g.cache_info()["eager_calls"] == 1


def test_updates_are_part_of_the_printed_graph_and_computed_in_place() -> None:
    model = nn.Linear(3, 2, rng=0, dtype=np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1)
    weight = model.weight._data

    def step(x: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = (model(Tensor(x)) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    fast = ap.compile(step)
    fast(np.ones((4, 3)))
    text = fast.ir("input")
    assert "update model.weight <- " in text and "update model.bias <- " in text
    before = weight.copy()
    fast(np.ones((4, 3)))
    assert model.weight._data is weight and not np.array_equal(weight, before)
    assert model.weight._vc[0] == 2  # two updates, as eager counts them


def test_results_do_not_alias_the_generated_codes_arrays() -> None:
    fast = ap.compile(lambda x: (Tensor(x).mul(1.0), ap.zeros(2)))
    x = np.array([1.0, -0.0])
    a, z = fast(x)
    x[0] = 5.0
    with ap.no_grad():
        z.add_(1.0)
    b, z2 = fast(np.array([1.0, -0.0]))
    assert a.tolist() == [1.0, 0.0] and np.signbit(a.data()[1])
    assert z2.tolist() == [0.0, 0.0] and b.tolist() == [1.0, 0.0]


def test_registering_a_gradient_hook_after_tracing_retraces_the_step() -> None:
    from aprender.runtime import engine

    w = Tensor(np.array([1.0, 2.0])).requires_grad()
    seen = []

    def step(x: np.ndarray) -> Tensor:
        w._grad = None
        (Tensor(x) * w).sum().backward()
        return w.grad()

    fast = ap.compile(step)
    fast(np.ones(2))
    handle = engine.register_grad_ready_hook(w, lambda leaf, g: seen.append(g.shape))
    fast(np.ones(2))  # the hook is not in the first trace: a new one runs it
    assert fast.cache_info()["compiles"] == 2 and seen
    assert "gradient-ready hooks of the trace" in fast.miss_reasons[-1]
    handle.remove()
