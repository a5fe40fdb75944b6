"""``CompiledFunction.export``: the latest compiled variant as a Python file that needs only
numpy, run in a subprocess that cannot import aprender, against the same compiled steps run
in this process."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import opcases
import pytest

import aprender as ap
from aprender import nn, optim
from aprender.autograd import Tensor, no_grad
from aprender.compiler.bundle import Bundle
from aprender.errors import CompileError, GraphError

#: prepended to every subprocess: importing aprender (or any part of it) raises ImportError
_NO_APRENDER = "import sys; sys.modules['aprender'] = None\n"


def run_without_aprender(cwd: Path, code: str) -> str:
    """Run ``code`` in a fresh interpreter in ``cwd`` that cannot import aprender; its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", _NO_APRENDER + code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


#: runs ``step.py`` on every batch of ``batches.npz``; saves the state and the losses
_TRAIN = """
import runpy
import numpy as np
module = runpy.run_path("step.py")
state, _ = module["load"]()
batches = np.load("batches.npz")
losses = [float(module["step"](batches[f"x{i}"], batches[f"y{i}"], state))
          for i in range(len(batches.files) // 2)]
np.savez("after.npz", losses=np.array(losses), **state)
"""


def batches(shape: tuple, n: int = 12, classes: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [(rng.standard_normal(shape), rng.integers(0, classes, shape[0])) for _ in range(n)]


def train_step(model: nn.Module, opt: optim.Optimizer):
    def step(x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss
    return step


def check_training(tmp_path: Path, model: nn.Module, opt: optim.Optimizer,
                   data: list[tuple[np.ndarray, np.ndarray]], state_keys: list[str]) -> str:
    """Compile a step, export it after two calls, then run the 10 remaining batches compiled
    here and standalone there: same losses, parameters, gradients and ``state_keys``."""
    fast = ap.compile(train_step(model, opt))
    fast(*data[0])
    fast(*data[1])  # the first call may run eagerly (optimizer state made lazily)
    path = fast.export(tmp_path / "step.py", *data[1])
    assert path == tmp_path / "step.py" and (tmp_path / "step.npz").exists()
    rest = data[2:]
    np.savez(tmp_path / "batches.npz", **{f"{k}{i}": a for i, b in enumerate(rest)
                                          for k, a in zip("xy", b, strict=True)})
    losses = [fast(x, y).item() for x, y in rest]
    assert fast.cache_info()["compiles"] == 1
    run_without_aprender(tmp_path, _TRAIN)
    after = np.load(tmp_path / "after.npz")
    np.testing.assert_allclose(after["losses"], losses, rtol=1e-6, atol=1e-6)
    for name, p in model.named_parameters():
        key = "model." + re.sub(r"^(\d+)\.", r"_items[\1].", name)  # the trace's names
        np.testing.assert_allclose(after[key], p.data(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(after[f"{key}.grad"], p.grad().data(), rtol=1e-6,
                                   atol=1e-6)
        assert not np.allclose(after[key], np.load(tmp_path / "step.npz")[f"state/{key}"])
    for key in state_keys:
        np.testing.assert_allclose(after[key], eval(key, {"opt": opt}).data(), rtol=1e-6,
                                   atol=1e-6)
    return path.read_text()


def test_sgd_mlp_training_step_runs_without_aprender(tmp_path: Path) -> None:
    model = nn.MLP(4, 16, 3, rng=0, dtype=np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    source = check_training(tmp_path, model, opt, batches((8, 4)),
                            [f"opt.state[{i}]['momentum_buffer']" for i in range(6)])
    assert "x: float64[8, 4]" in source and "y: int64[8]" in source
    assert "model.fc1.weight: float64[4, 16] (updated in place)" in source
    assert "opt._lr: float64[]" in source  # read, not updated
    assert "model.fc1.weight.grad: float64[4, 16]" in source
    # main() runs one call on the saved examples and prints the outputs' shapes
    out = run_without_aprender(tmp_path, "import runpy\n"
                                         "runpy.run_path('step.py', run_name='__main__')\n")
    assert out.strip() == "output: float64[]"


def test_adam_state_arrays_are_exported_and_updated(tmp_path: Path) -> None:
    model = nn.MLP(4, 8, 3, rng=2, dtype=np.float32)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    check_training(tmp_path, model, opt, [(x.astype(np.float32), y)
                                          for x, y in batches((6, 4))],
                   [f"opt.state[{i}]['{k}']" for i in range(6)
                    for k in ("exp_avg", "exp_avg_sq")])


def test_cnn_step_carries_aprenders_conv_and_pool_kernels(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0, dtype=np.float64), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3, rng=1,
                                                                   dtype=np.float64))
    opt = optim.SGD(model.parameters(), lr=0.05)
    source = check_training(tmp_path, model, opt, batches((5, 1, 8, 8)), [])
    for kernel in ("def _conv_impl(", "def _conv_weight_grad_impl(", "def _max_pool_impl(",
                   "def _max_pool_grad_impl("):
        assert kernel in source
    assert "aprender import" not in source and "from ." not in source


@pytest.mark.parametrize("grad_mode", [True, False])
def test_forward_export_computes_the_compiled_forward(tmp_path: Path, grad_mode: bool) -> None:
    model = nn.MLP(5, 8, 4, rng=3, dtype=np.float64)
    fast = ap.compile(lambda x: model(Tensor(x)).softmax(-1))
    x = np.random.default_rng(4).standard_normal((7, 5))
    with ap.enable_grad() if grad_mode else no_grad():
        expected = fast(x).data()
    fast.export(tmp_path / "forward.py", x)
    code = ("import runpy\nimport numpy as np\nm = runpy.run_path('forward.py')\n"
            "state, (x,) = m['load']()\nsaved = {k: v.copy() for k, v in state.items()}\n"
            "np.save('out.npy', m['step'](x, state))\n"
            "assert sorted(state) == sorted(saved)\n"
            "assert all(np.array_equal(state[k], saved[k]) for k in state)\n")
    run_without_aprender(tmp_path, code)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    source = (tmp_path / "forward.py").read_text()
    assert "compiled function" in source and "(updated in place)" not in source


def test_every_op_case_exports_and_runs_without_aprender(tmp_path: Path) -> None:
    """Each op case's compiled step (forward and backward of a weighted sum; kernels such as
    erf, einsum, pooling, gather, random draws) gives, standalone, this process's values."""
    cases, _ = opcases.all_cases()
    expected: dict[str, np.ndarray] = {}
    names = []
    for case in cases:
        if case.name.startswith("all_reduce"):
            continue  # refused: test_collectives_are_refused
        fn, extra = opcases.traceable(case)
        arrays = opcases.inputs(case)
        probe = case.fn(*[Tensor(a) for a in arrays], *case.fixed)
        diff = case.grads and probe.dtype.kind == "f"
        weights = Tensor(np.random.default_rng(3).uniform(0.5, 1.5, probe.shape))

        def step(*args: Any, fn=fn, diff=diff, weights=weights) -> Tensor:
            out = fn(*args)
            if diff:
                (out * weights).sum().backward()
            return out

        fast = ap.compile(step)
        xs = [Tensor(a).requires_grad(diff) for a in arrays]
        fast(*xs, *extra)
        fast.export(tmp_path / f"{case.name}.py", *xs, *extra)
        xs = [Tensor(a).requires_grad(diff) for a in arrays]  # fresh leaves: the same variant
        expected[f"{case.name}/out"] = fast(*xs, *extra).data().copy()
        for i, x in enumerate(xs):
            if x.grad() is not None:
                expected[f"{case.name}/args[{i}].grad"] = x.grad().data()
        names.append(case.name)
    (tmp_path / "names.json").write_text(json.dumps(names))
    run_without_aprender(tmp_path, """
import json, runpy
import numpy as np
got = {}
for name in json.load(open("names.json")):
    module = runpy.run_path(name + ".py")
    state, examples = module["load"]()
    got[name + "/out"] = np.asarray(module["step"](*examples, state))
    got.update((f"{name}/{k}", v) for k, v in state.items() if k.endswith(".grad"))
np.savez("got.npz", **got)
""")
    got = np.load(tmp_path / "got.npz")
    assert sorted(got.files) == sorted(expected)
    for key, want in expected.items():
        assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


def _load(path: Path) -> dict[str, Any]:
    return runpy.run_path(str(path))


def test_argument_updates_containers_and_returned_objects(tmp_path: Path) -> None:
    w = Tensor(np.arange(6.0).reshape(2, 3)).requires_grad()
    scale = Tensor(np.array(0.5))

    def f(v: Tensor, x: np.ndarray) -> dict:
        with no_grad():
            v.sub_(Tensor(x) * scale)  # an argument updated in place
        loss = (w * v).sum()
        loss.backward()
        return {"v": v, "pair": (loss, w.grad()), "tag": "done"}

    fast = ap.compile(f)
    v0, x0 = Tensor(np.ones((2, 3))), np.full((2, 3), 2.0)
    fast(v0, x0)  # v0 is now zeros
    fast.export(tmp_path / "f.py", Tensor(np.ones((2, 3))), x0)
    m = _load(tmp_path / "f.py")
    state, (v, x) = m["load"]()
    out = m["step"](v, x, state)
    assert out["v"] is v and out["tag"] == "done"  # the argument itself, updated in place
    np.testing.assert_array_equal(v, np.zeros((2, 3)))  # 1 - 2 * 0.5
    assert out["pair"][0] == 0.0 and out["pair"][1] is state["w.grad"]
    np.testing.assert_array_equal(state["w.grad"], np.zeros((2, 3)))  # d(w * v)/dw = v
    np.testing.assert_array_equal(state["w"], np.arange(6.0).reshape(2, 3))  # not updated
    with pytest.raises(ValueError, match=r"argument v must be float64\[2, 3\].*float64\[3, 2\]"):
        m["step"](np.ones((3, 2)), x, state)
    with pytest.raises(KeyError, match="state has no 'scale"):
        m["step"](v, x, {"w": state["w"]})


def test_errors(tmp_path: Path) -> None:
    fast = ap.compile(lambda x: Tensor(x).exp())
    with pytest.raises(GraphError, match="nothing compiled yet"):
        fast.export(tmp_path / "a.py")
    fast(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"must name a \.py file"):
        fast.export(tmp_path / "a.txt")
    with pytest.raises(CompileError, match=r"example argument x is float32\[2, 3\]; .* "
                                           r"compiled for float64\[2, 3\]"):
        fast.export(tmp_path / "a.py", np.zeros((2, 3), np.float32))
    assert not (tmp_path / "a.py").exists()
    fast.export(tmp_path / "a.py")  # without examples: zeros of the compiled shapes
    state, (x,) = _load(tmp_path / "a.py")["load"]()
    np.testing.assert_array_equal(x, np.zeros((2, 3)))


def test_collectives_are_refused() -> None:
    fast = ap.compile(lambda x: Tensor(x).all_reduce("sum") * 2.0)
    fast(np.ones(3))
    with pytest.raises(CompileError, match="runs all_reduce .* MPI collective"):
        fast.export("unused.py")
    assert not Path("unused.py").exists()


def local_kernel(x: np.ndarray) -> np.ndarray:
    return x


def test_kernels_that_cannot_be_copied_are_refused_naming_the_op() -> None:
    with pytest.raises(CompileError, match="op fake .* not a module-level function of "
                                           "aprender"):
        Bundle().add_kernel("fake", lambda x: x)
    with pytest.raises(CompileError, match="op mine"):
        Bundle().add_kernel("mine", local_kernel)
    bundle = Bundle()
    bundle.reserve(["_one_hot_impl"], "the standalone module")
    from aprender.ir.registry import get_op
    with pytest.raises(CompileError, match="_one_hot_impl is defined by both"):
        bundle.add_kernel("one_hot", get_op("one_hot").impl)
