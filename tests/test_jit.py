"""ap.compile: whole training steps, compiled regions inside eager code, the cache and guards."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor


def _data(seed: int = 0, steps: int = 30, batch: int = 8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((steps, batch, 5)), rng.integers(0, 3, (steps, batch))


def _model_and_opt(kind: str):
    model = nn.MLP(5, 16, 3, rng=0, dtype=np.float64)
    if kind == "sgd":
        opt = ap.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                           weight_decay=1e-3)
    elif kind == "adam":
        opt = ap.optim.Adam(model.parameters(), lr=0.01)
    else:
        opt = ap.optim.AdamW(model.parameters(), lr=0.01, amsgrad=True)
    return model, opt


def _eager_step(model, opt, x, y):
    opt.zero_grad()
    loss = nn.cross_entropy(model(Tensor(x)), y)
    loss.backward()
    opt.step()
    return loss


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_thirty_compiled_training_steps_equal_eager(kind) -> None:
    xs, ys = _data()
    m1, o1 = _model_and_opt(kind)
    m2, o2 = _model_and_opt(kind)

    def step(x, y):
        return _eager_step(m2, o2, x, y)

    fast = ap.compile(step)
    for x, y in zip(xs, ys, strict=True):
        l1 = _eager_step(m1, o1, x, y)
        l2 = fast(x, y)
        assert l2.item() == pytest.approx(l1.item(), rel=1e-9)
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        np.testing.assert_allclose(p2.data(), p1.data(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(p2.grad().data(), p1.grad().data(), rtol=1e-9, atol=1e-12)
    for s1, s2 in zip(o1.state, o2.state, strict=True):
        for k in s1:
            np.testing.assert_allclose(s2[k].data(), s1[k].data(), rtol=1e-9, atol=1e-12)
    assert fast.cache_info()["compiles"] == 1 and fast.cache_info()["hits"] == 29


def test_tracing_changes_no_user_object() -> None:
    xs, ys = _data(steps=1)
    m1, o1 = _model_and_opt("adam")
    m2, o2 = _model_and_opt("adam")
    fast = ap.compile(lambda x, y: _eager_step(m2, o2, x, y))
    fast(xs[0], ys[0])  # trace + one real step: must equal exactly one eager step
    _eager_step(m1, o1, xs[0], ys[0])
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        np.testing.assert_allclose(p2.data(), p1.data(), rtol=1e-12)
    assert o2.state[0]["step"].item() == 1.0


def test_changing_lr_and_updating_parameters_do_not_recompile_and_are_seen() -> None:
    w = Tensor(np.array([1.0, 2.0])).requires_grad()
    opt = ap.optim.SGD([w], lr=0.5)

    def step(x):
        opt.zero_grad()
        loss = (w * x).sum()
        loss.backward()
        opt.step()
        return loss

    fast = ap.compile(step)
    x = np.array([1.0, 1.0])
    assert fast(x).item() == 3.0 and w.tolist() == [0.5, 1.5]
    opt.lr = 0.25
    assert fast(x).item() == 2.0 and w.tolist() == [0.25, 1.25]
    with ap.no_grad():
        w.assign([10.0, 10.0])
    assert fast(x).item() == 20.0
    assert fast.cache_info()["compiles"] == 1


def test_compiled_forward_joins_the_eager_graph() -> None:
    model = nn.MLP(4, 6, 2, rng=1, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((3, 4))
    fast = ap.compile(model)
    out = fast(Tensor(x))
    assert out.requires_grad_enabled() and not out.is_leaf()
    (out * out).sum().backward()
    compiled_grads = [p.grad().data().copy() for p in model.parameters()]
    model.zero_grad()
    ref = model(Tensor(x))
    (ref * ref).sum().backward()
    np.testing.assert_allclose(out.data(), ref.data(), rtol=1e-12)
    for got, p in zip(compiled_grads, model.parameters(), strict=True):
        np.testing.assert_allclose(got, p.grad().data(), rtol=1e-12)
    assert "## backward" in fast.ir() and "def build" in fast.source()


@settings(max_examples=15, deadline=None)
@given(ops=st.lists(st.sampled_from(["tanh", "relu", "exp", "sq", "mm", "bias", "sum1"]),
                    min_size=1, max_size=6), seed=st.integers(0, 100))
def test_hypothesis_programs_compiled_equal_eager(ops, seed) -> None:
    rng = np.random.default_rng(seed)
    w = Tensor(rng.uniform(-0.5, 0.5, (4, 4))).requires_grad()
    b = Tensor(rng.uniform(-0.5, 0.5, 4)).requires_grad()
    x = rng.uniform(-1, 1, (3, 4))

    def f(x: Tensor) -> Tensor:
        h = x @ w
        for op in ops:
            if op == "mm":
                h = h @ w
            elif op == "bias":
                h = h + b
            elif op == "sq":
                h = h * h
            elif op == "sum1":
                h = h - h.sum_axis(1, keepdims=True) * 0.25
            else:
                h = getattr(h, op)()
        return (h * 0.5).sum()

    got = ap.compile(f)(Tensor(x))
    got.backward()
    g_w, g_b = (None if p.grad() is None else p.grad().data().copy() for p in (w, b))
    ap.clear_grad(w.id())
    ap.clear_grad(b.id())
    ref = f(Tensor(x))
    ref.backward()
    assert got.item() == pytest.approx(ref.item(), rel=1e-12, abs=1e-12)
    for got_g, p in ((g_w, w), (g_b, b)):
        if p.grad() is None:
            assert got_g is None
        else:
            np.testing.assert_allclose(got_g, p.grad().data(), rtol=1e-10, atol=1e-12)


def test_new_shapes_retrace_keep_old_entries_and_explain_the_miss() -> None:
    model = nn.MLP(4, 6, 2, rng=1)
    fast = ap.compile(model)
    with ap.no_grad():
        fast(Tensor(np.ones((3, 4), np.float32)))
        fast(Tensor(np.ones((5, 4), np.float32)))
        fast(Tensor(np.ones((3, 4), np.float32)))
    info = fast.cache_info()
    assert (info["hits"], info["misses"], info["compiles"]) == (1, 2, 2)
    assert info["miss_reasons"][1] == ("x: tensor float32[3, 4] requires_grad=False -> "
                                       "tensor float32[5, 4] requires_grad=False")
    fast(Tensor(np.ones((3, 4), np.float32)))  # grad mode differs: a third variant
    assert "grad mode: False -> True" in fast.cache_info()["miss_reasons"][2]


def test_python_scalars_are_part_of_the_key() -> None:
    fast = ap.compile(lambda x, k: x * k)
    assert fast(Tensor([1.0]), 2.0).tolist() == [2.0]
    assert fast(Tensor([1.0]), 3.0).tolist() == [3.0]
    assert "k: float 2.0 -> float 3.0" in fast.cache_info()["miss_reasons"][1]


def test_cache_limit_warns_loudly_and_still_compiles() -> None:
    fast = ap.compile(lambda x: x * 2.0, cache_limit=2)
    fast(Tensor(np.ones(1)))
    fast(Tensor(np.ones(2)))
    with pytest.warns(RuntimeWarning, match="past its cache limit of 2"):
        assert fast(Tensor(np.ones(3))).tolist() == [2.0, 2.0, 2.0]


def test_reading_values_inside_a_trace_names_the_line_and_changes_nothing() -> None:
    w = Tensor(np.array([1.0])).requires_grad()

    def bad(x):
        y = x * w
        if y.item() > 0:  # data-dependent control flow
            return y
        return -y

    fast = ap.compile(bad)
    with pytest.raises(ap.GraphError, match=r"item: reading a tensor's value inside a compiled "
                                            r"function.*test_jit.py:\d+: if y.item\(\) > 0"):
        fast(Tensor([2.0]))
    with pytest.raises(ap.GraphError, match="bool: reading"):
        ap.compile(lambda x: x if x.sum() else x)(Tensor([1.0]))
    assert fast.cache_info()["compiles"] == 0 and w.grad() is None


def test_same_parameter_passed_twice() -> None:
    w = Tensor(np.array([1.0, 2.0])).requires_grad()

    def f(a, b):
        return (a * b * w).sum()

    out = ap.compile(f)(w, w)
    out.backward()
    np.testing.assert_allclose(w.grad().data(), 3 * w.data() ** 2)


def test_hostile_names_stay_out_of_generated_source() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            self.heads = {'a"); __import__("os").system("x") #\nimport os': nn.Linear(2, 2, rng=0)}

        def forward(self, x):
            return sum(h(x) for h in self.heads.values())

    fast = ap.compile(Model())
    with ap.no_grad():
        fast(Tensor(np.ones((1, 2), np.float32)))
    for line in fast.source().splitlines():
        code = line.split("#", 1)[0]
        assert "import os" not in code and 'system("' not in code and "__import__(" not in code


def test_one_compiled_step_from_several_threads() -> None:
    w = Tensor(np.array([[1.0, -1.0], [0.5, 2.0]]))
    fast = ap.compile(lambda x: (x @ w).tanh() * 2.0)
    inputs = [np.random.default_rng(i).standard_normal((64, 2)) for i in range(4)]
    expected = [np.tanh(x @ w.data()) * 2.0 for x in inputs]
    errors: list = []

    def work(i: int) -> None:
        try:
            for _ in range(200):
                np.testing.assert_allclose(fast(inputs[i]).data(), expected[i], rtol=1e-12)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    with ap.no_grad():
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[:1]


def test_inspection_ir_stages_source_stats() -> None:
    model, opt = _model_and_opt("sgd")
    xs, ys = _data(steps=2)
    fast = ap.compile(lambda x, y: _eager_step(model, opt, x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast(xs[0], ys[0])
    text = fast.ir()
    assert "# after fuse" in text and "[bwd]" in text and "[update]" in text
    assert fast.ir("simplify").startswith("## forward after simplify")
    stats = fast.stats()
    assert stats["compile_ms"] > 0 and set(stats["pass_ms"]) >= {"cse", "fuse", "codegen"}


def test_dump_env_writes_compiled_graphs_and_source(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("APRENDER_DUMP", str(tmp_path))
    w = Tensor(np.ones((3, 2))).requires_grad()
    opt = ap.optim.SGD([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = (x @ w).relu().sum()
        loss.backward()
        opt.step()
        return loss

    ap.compile(step)(np.ones((4, 3)))
    suffixes = sorted(p.suffix for p in tmp_path.iterdir())
    assert suffixes.count(".py") == 1 and suffixes.count(".json") == 1  # traced graph as JSON
    assert suffixes.count(".txt") == 2 and suffixes.count(".dot") == 2  # traced and final
    source = next(tmp_path.glob("*.py")).read_text()
    assert "def build(np, buffers, consts, kernels)" in source
    final = [p for p in tmp_path.glob("*.txt") if "fused[" in p.read_text()]
    assert len(final) == 1


def test_keyword_arguments_nested_outputs_and_outputs_without_gradients() -> None:
    model = nn.MLP(3, 4, 2, rng=0, dtype=np.float64)

    def f(x, scale=1.0, extra=None):
        out = model(Tensor(x)) * scale
        return out.sum(), [out, extra[0] * 2.0]

    fast = ap.compile(f)
    x = np.random.default_rng(0).standard_normal((2, 3))
    got = fast(x, scale=2.0, extra=[Tensor(np.ones(2))])
    assert isinstance(got, tuple) and isinstance(got[1], list)
    assert not got[1][1].requires_grad_enabled() and got[1][1].tolist() == [2.0, 2.0]
    got[0].backward()
    compiled_grad = model.fc1.weight.grad().data().copy()
    model.zero_grad()
    ref = f(x, scale=2.0, extra=[Tensor(np.ones(2))])
    ref[0].backward()
    assert got[0].item() == pytest.approx(ref[0].item(), rel=1e-12)
    np.testing.assert_allclose(compiled_grad, model.fc1.weight.grad().data(), rtol=1e-12)
    fast(x, scale=2.0, extra=[Tensor(np.ones(2))])
    assert fast.cache_info()["hits"] == 1


def test_layernorm_gelu_smoothing_clipping_adam_step_compiles_exactly() -> None:
    def make():
        model = nn.Sequential(nn.Linear(6, 16, rng=0, dtype=np.float64),
                              nn.LayerNorm(16, dtype=np.float64), nn.GELU(),
                              nn.Linear(16, 3, rng=1, dtype=np.float64))
        return model, ap.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.01)

    def step(model, opt, x, y):
        opt.zero_grad()
        logits = model(Tensor(x))
        loss = nn.cross_entropy(logits, y, label_smoothing=0.1)
        loss.backward()
        ap.optim.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        return loss, logits

    (m1, o1), (m2, o2) = make(), make()
    fast = ap.compile(lambda x, y: step(m2, o2, x, y))
    rng = np.random.default_rng(0)
    for _ in range(10):
        x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
        (l1, z1), (l2, z2) = step(m1, o1, x, y), fast(x, y)
        assert l2.item() == pytest.approx(l1.item(), rel=1e-9)
        np.testing.assert_allclose(z2.data(), z1.data(), rtol=1e-9)
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        np.testing.assert_allclose(p2.data(), p1.data(), rtol=1e-9, atol=1e-12)
