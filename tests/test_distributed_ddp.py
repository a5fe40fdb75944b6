"""``DistributedDataParallel`` on 2 ranks (``mpiexec`` through ``tests/mpi_run.py``), the
engine's gradient-ready hooks and the collective scheduling pass.

The references are single-process runs of the same model on the full batch (both ranks'
rows), computed here; the ranks print their final parameters as JSON.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
from mpi_run import mpi_check

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.compiler.passes.schedule import schedule_collectives
from aprender.distributed import DistributedDataParallel
from aprender.errors import GraphError
from aprender.ir.graph import Graph, Node, Value
from aprender.ir.registry import get_op
from aprender.runtime import engine

STEPS, B = 5, 4  # 5 steps of a per-rank batch of 4 (8 rows in the single-process reference)
TOL = {"float64": 1e-10, "float32": 1e-5}


def data(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``STEPS`` global batches of ``2 * B`` rows: inputs and labels."""
    rng = np.random.default_rng(7)
    return (rng.standard_normal((STEPS, 2 * B, 6)).astype(dtype),
            rng.integers(0, 3, (STEPS, 2 * B)))


class Branchy(nn.Module):
    """An MLP whose ``extra`` head is used only when ``use_extra``."""

    def __init__(self, dtype: str, seed: int) -> None:
        self.body = nn.Linear(6, 8, rng=seed, dtype=dtype)
        self.head = nn.Linear(8, 3, rng=seed + 1, dtype=dtype)
        self.extra = nn.Linear(8, 3, rng=seed + 2, dtype=dtype)

    def forward(self, x: Tensor, use_extra: bool) -> Tensor:
        h = self.body(x).tanh()
        return self.head(h) + self.extra(h) if use_extra else self.head(h)


def with_batchnorm(seed: int) -> nn.Module:
    """A float64 MLP with BatchNorm buffers; every buffer starts at ``seed + 1``-shifted values
    (so ranks differ before DDP copies rank 0's)."""
    model = nn.Sequential(nn.Linear(6, 8, rng=seed, dtype="float64"),
                          nn.BatchNorm1d(8, dtype="float64"), nn.ReLU(),
                          nn.Linear(8, 3, rng=seed + 1, dtype="float64"))
    with ap.no_grad():
        for buffer in model.buffers():
            buffer.assign(buffer.data() + seed + 1)
    return model


def make_optimizer(name: str, params: list) -> ap.optim.Optimizer:
    if name == "sgd":
        return ap.optim.SGD(params, lr=0.1, momentum=0.9)
    return ap.optim.Adam(params, lr=0.05)


def train(model: nn.Module, opt_name: str, xs: np.ndarray, ys: np.ndarray, compiled: bool,
          use_extra: list[bool] | None = None) -> object:
    """``STEPS`` training steps of ``model`` on the batches ``xs, ys`` (rows: one rank's, or
    both ranks' for the reference); ``use_extra[k]``: a Branchy model on row block ``k``."""
    opt = make_optimizer(opt_name, model.parameters())

    def step(x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        if use_extra is None:
            loss = nn.cross_entropy(model(Tensor(x)), y)
        else:  # the mean over the row blocks of each block's mean loss
            n = len(x) // len(use_extra)
            losses = [nn.cross_entropy(model(Tensor(x[k * n:(k + 1) * n]), flag),
                                       y[k * n:(k + 1) * n]) for k, flag in enumerate(use_extra)]
            loss = losses[0] if len(losses) == 1 else (losses[0] + losses[1]) * 0.5
        loss.backward()
        opt.step()
        return loss

    run = ap.compile(step) if compiled else step
    for x, y in zip(xs, ys, strict=True):
        run(x, y)
    return run


def reference(kind: str, dtype: str, opt_name: str) -> dict[str, np.ndarray]:
    """One process, the full batch: the parameters after ``STEPS`` steps."""
    xs, ys = data(dtype)
    if kind == "mlp":
        model = nn.MLP(6, 8, 3, rng=0, dtype=dtype)
        train(model, opt_name, xs, ys, compiled=False)
    else:
        model = Branchy(dtype, 0)
        train(model, opt_name, xs, ys, compiled=False, use_extra=[True, False])
    return model.state_dict()


PROGRAM = "\n".join([
    "import json", "import numpy as np", "import aprender as ap", "from aprender import nn",
    "from aprender import distributed as dist", "from aprender.autograd import Tensor",
    "from aprender.compiler import DEFAULT_PASSES, lower",
    "from aprender.compiler.passes.schedule import schedule_collectives",
    f"STEPS, B = {STEPS}, {B}",
    *(inspect.getsource(f) for f in (data, Branchy, with_batchnorm, make_optimizer, train)),
    """
dist.init(timeout=30)
r = dist.rank()
rows = slice(r * B, (r + 1) * B)
out = {"runs": {}, "errors": {}}


def params(model):
    return {k: v.astype(np.float64).tolist() for k, v in model.state_dict().items()}


for dtype in ("float64", "float32"):
    xs, ys = data(dtype)
    for opt_name in ("sgd", "adam"):
        for mode in ("eager", "compiled"):
            for bucket_mb in (1e-5, 25.0):  # one parameter per bucket; one bucket
                # rank 1 starts from other weights: DDP copies rank 0's
                ddp = dist.DistributedDataParallel(nn.MLP(6, 8, 3, rng=r, dtype=dtype),
                                                   bucket_mb=bucket_mb)
                run = train(ddp, opt_name, xs[:, rows], ys[:, rows], mode == "compiled")
                key = f"mlp/{dtype}/{opt_name}/{mode}/{bucket_mb}"
                out["runs"][key] = {"params": params(ddp.module),
                                    "buckets": ddp.bucket_sizes(),
                                    "keys": list(ddp.state_dict())[:2]}
                if mode == "compiled" and dtype == "float32" and opt_name == "sgd":
                    graph = run._entry().forward.stage("input")
                    scheduled = lower(graph)
                    out["runs"][key].update(
                        in_ir="all_reduce" in run.ir(), source=run.source(),
                        final=run.ir(DEFAULT_PASSES[-1].__name__), scheduled=scheduled.source)
    for mode in ("eager", "compiled"):  # rank 1 never uses the extra head
        ddp = dist.DistributedDataParallel(Branchy(dtype, r * 10), bucket_mb=1e-5)
        train(ddp, "sgd", xs[:, rows], ys[:, rows], mode == "compiled", use_extra=[r == 0])
        out["runs"][f"branchy/{dtype}/sgd/{mode}"] = {"params": params(ddp.module)}
        ddp.module.zero_grad()  # no rank uses it: every gradient is there, zeros for extra
        nn.cross_entropy(ddp(Tensor(xs[0, rows]), False), ys[0, rows]).backward()
        out["runs"][f"branchy/{dtype}/sgd/{mode}"]["unused_grads"] = {
            name: (None if p.grad() is None else float(np.abs(p.grad().data()).max()))
            for name, p in ddp.named_parameters()}

xs, ys = data("float64")
ddp = dist.DistributedDataParallel(nn.MLP(6, 8, 3, rng=r, dtype="float64"), bucket_mb=1e-5)
for k in range(2):  # two backward() calls without zero_grad(): the sum of the two means
    nn.cross_entropy(ddp(Tensor(xs[k, rows])), ys[k, rows]).backward()
out["runs"]["accumulated"] = {k: p.grad().data().tolist() for k, p in ddp.named_parameters()}

for mode in ("eager", "compiled"):  # buffers: rank 0's at construction and before each forward
    ddp = dist.DistributedDataParallel(with_batchnorm(r))
    copied = {k: v.tolist() for k, v in ddp.module.state_dict().items()}
    with ap.no_grad():  # rank 1's running mean drifts: the next forward starts from rank 0's
        ddp.module[1].running_mean.add_(5.0 * r)
    train(ddp, "sgd", xs[:1, rows], ys[:1, rows], mode == "compiled")
    after = {k: v.tolist() for k, v in ddp.module.state_dict().items() if "running" in k
             or "batches" in k}
    out["runs"][f"batchnorm/{mode}"] = {"copied": copied, "after": after}

for name, model in (("shape", nn.MLP(6, 8 + r, 3, rng=0)),
                    ("count", nn.Sequential(*[nn.Linear(6, 6, rng=0) for _ in range(1 + r)]))):
    try:
        dist.DistributedDataParallel(model)
        out["errors"][name] = "no error"
    except dist.DistributedError as e:
        out["errors"][name] = str(e)
print(json.dumps(out))
"""])


@pytest.fixture(scope="module")
def ranks() -> list[dict]:
    """One 2-rank run of every DDP case; what each rank printed."""
    return [json.loads(out.strip().splitlines()[-1])
            for out in mpi_check(PROGRAM, timeout=120)]


def _assert_params(run: dict, expected: dict[str, np.ndarray], tol: float) -> None:
    assert list(run["params"]) == list(expected)
    for name, values in run["params"].items():
        np.testing.assert_allclose(np.array(values), expected[name].astype(np.float64),
                                   rtol=0, atol=tol, err_msg=name)


@pytest.mark.parametrize("mode", ["eager", "compiled"])
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_ranks_train_as_one_process_on_the_full_batch(ranks: list[dict], dtype: str,
                                                          opt_name: str, mode: str) -> None:
    expected = reference("mlp", dtype, opt_name)
    for bucket_mb, buckets in ((1e-05, [1] * 6), (25.0, [6])):
        key = f"mlp/{dtype}/{opt_name}/{mode}/{bucket_mb}"
        runs = [out["runs"][key] for out in ranks]
        assert runs[0]["params"] == runs[1]["params"]  # the replicas are equal, bit for bit
        assert runs[0]["buckets"] == buckets
        assert runs[0]["keys"] == ["module.fc1.weight", "module.fc1.bias"]
        _assert_params(runs[0], expected, TOL[dtype])


@pytest.mark.parametrize("mode", ["eager", "compiled"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_parameter_unused_on_one_rank_contributes_zeros(ranks: list[dict], dtype: str,
                                                          mode: str) -> None:
    expected = reference("branchy", dtype, "sgd")
    runs = [out["runs"][f"branchy/{dtype}/sgd/{mode}"] for out in ranks]
    assert runs[0]["params"] == runs[1]["params"]
    _assert_params(runs[0], expected, TOL[dtype])
    for run in runs:  # unused on every rank: a zero gradient, not None
        grads = run["unused_grads"]
        assert grads["module.extra.weight"] == 0.0 and grads["module.extra.bias"] == 0.0
        assert grads["module.body.weight"] > 0.0


def test_gradients_accumulated_over_two_backwards_are_the_sum_of_the_means(
        ranks: list[dict]) -> None:
    xs, ys = data("float64")
    model = nn.MLP(6, 8, 3, rng=0, dtype="float64")
    for k in range(2):
        nn.cross_entropy(model(Tensor(xs[k])), ys[k]).backward()
    for out in ranks:
        for name, p in model.named_parameters():
            np.testing.assert_allclose(np.array(out["runs"]["accumulated"][f"module.{name}"]),
                                       p.grad().data(), rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_buffers_come_from_rank_0_at_construction_and_before_each_forward(
        ranks: list[dict], mode: str) -> None:
    expected = with_batchnorm(0).state_dict()
    xs, _ = data("float64")
    for r, out in enumerate(ranks):
        run = out["runs"][f"batchnorm/{mode}"]
        for name, values in run["copied"].items():  # parameters and buffers alike
            np.testing.assert_array_equal(np.array(values), expected[name], err_msg=name)
        model = with_batchnorm(0)  # rank 0's weights and buffers, this rank's batch
        model(Tensor(xs[0, r * B:(r + 1) * B]))
        for name, values in run["after"].items():
            np.testing.assert_allclose(np.array(values), model.state_dict()[name], rtol=0,
                                       atol=1e-12, err_msg=f"rank {r} {name}")
    assert ranks[0]["runs"][f"batchnorm/{mode}"]["after"]["1.num_batches_tracked"] == 2


def test_different_models_fail_at_construction_on_every_rank(ranks: list[dict]) -> None:
    for out in ranks:
        shape, count = out["errors"]["shape"], out["errors"]["count"]
        assert "parameter 'fc1.weight' has shape [6, 8] (float32) on rank 0 but [6, 9] " \
               "(float32) on rank 1" in shape
        assert "rank 0 has 2 parameters, rank 1 has 4 (parameter '1.weight' [6, 6] is only " \
               "on rank 1)" in count


def test_compiled_step_holds_one_all_reduce_per_bucket_between_backward_and_update(
        ranks: list[dict]) -> None:
    run = ranks[0]["runs"]["mlp/float32/sgd/compiled/1e-05"]
    assert run["in_ir"] and run["source"].count("k_all_reduce(") == 6
    lines = run["final"].splitlines()
    reduces = [i for i, line in enumerate(lines) if "= all_reduce " in line]
    assert len(reduces) == 6 and all("op='mean'" in lines[i] for i in reduces)
    first_bwd = next(i for i, line in enumerate(lines) if "[bwd]" in line)
    first_update = next(i for i, line in enumerate(lines) if "opt.step()" in line)
    assert first_bwd < reduces[0] and reduces[-1] < first_update


def test_the_schedule_pass_puts_each_bucket_after_its_last_gradient(ranks: list[dict]) -> None:
    """On the real DDP graph: the first bucket (the last layer's bias) is reduced right after
    its gradient, long before the backward reaches the first layer's weight."""
    lines = ranks[0]["runs"]["mlp/float32/sgd/compiled/1e-05"]["scheduled"].splitlines()
    reduces = [i for i, line in enumerate(lines) if "k_all_reduce(" in line]
    matmuls = [i for i, line in enumerate(lines)  # products (not the loss total's dot)
               if "dot(" in line and "_flat" not in line]
    assert len(reduces) == 6
    assert matmuls[3] < reduces[0] < matmuls[4]  # 3 forward products, then fc3.bias' sum
    assert reduces[-1] > matmuls[-1]  # fc1.weight's gradient is the last product


def _node(op: str, inputs: tuple, out_shape: tuple, name: str, attrs: dict | None = None) -> Node:
    return Node(get_op(op), inputs, attrs or {}, out=Value(name, out_shape, np.float64))


def _collective(x: Value, name: str) -> Node:
    return _node("all_reduce", (x,), x.shape, name, {"op": "mean", "group": "world"})


def test_schedule_moves_collectives_up_and_keeps_their_order() -> None:
    x, w = Value("x", (4, 4), np.float64), Value("w", (4, 4), np.float64)
    a = _node("matmul", (x, w), (4, 4), "a")  # a gradient ready early
    b = _node("tanh", (a.out,), (4, 4), "b")
    c = _node("matmul", (b.out, w), (4, 4), "c")  # one ready late
    flat = _node("reshape", (a.out,), (16,), "flat", {"shape": (16,)})
    early = _collective(flat.out, "early")
    late = _collective(c.out, "late")
    graph = Graph("g", [x, w], [a, b, c, flat, early, late], [early.out, late.out, b.out])
    moved = schedule_collectives(graph).verify()
    assert [n.out.name for n in moved.nodes] == ["a", "flat", "early", "b", "c", "late"]
    args = [np.arange(16.0).reshape(4, 4) / 10, np.eye(4) - 0.1]
    for got, want in zip(moved.evaluate(*args), graph.evaluate(*args), strict=True):
        np.testing.assert_array_equal(got, want)
    # the late gradient's all-reduce comes first: the early one may not pass it (MPI order)
    swapped = Graph("g", [x, w], [a, b, c, flat, _collective(c.out, "late"),
                                  _collective(flat.out, "early")], [b.out])
    order = [n.out.name for n in schedule_collectives(swapped).nodes]
    assert order == ["a", "flat", "b", "c", "late", "early"]


def test_grad_ready_hooks_fire_once_per_leaf_when_its_gradient_is_complete() -> None:
    w1 = Tensor(np.ones((3, 4))).requires_grad()
    w2 = Tensor(np.full((4, 2), 0.5)).requires_grad()
    x = Tensor(np.arange(15.0).reshape(5, 3))
    seen: list = []

    def hook(leaf: Tensor, grad: Tensor) -> None:
        seen.append((leaf is w1, grad.data().copy(), leaf.grad()))
        if len(seen) == 1:
            engine.queue_callback(lambda: seen.append(("end", w1.grad().data().copy())))

    handles = [engine.register_grad_ready_hook(w, hook) for w in (w1, w2)]
    try:
        h = x @ w1
        ((h @ w2).sum() + h.sum() * 2.0 + (w2 * w2).sum()).backward()
    finally:
        for handle in handles:
            handle.remove()
    g_w1 = x.data().T @ (np.ones((5, 2)) @ w2.data().T + 2.0)
    g_w2 = h.data().T @ np.ones((5, 2)) + 2 * w2.data()
    assert [s[0] for s in seen[:2]] == [False, True]  # w2 is finished first
    np.testing.assert_allclose(seen[0][1], g_w2)
    np.testing.assert_allclose(seen[1][1], g_w1)
    assert seen[0][2] is None and seen[1][2] is None  # written after every hook ran
    assert seen[2][0] == "end"
    np.testing.assert_allclose(seen[2][1], g_w1)
    assert engine._READY_HOOKS == {}
    (x @ w1).sum().backward()  # removed: no hook runs
    assert len(seen) == 3
    with pytest.raises(GraphError, match="only possible while backward"):
        engine.queue_callback(lambda: None)


def test_train_digits_distributed_on_two_ranks(tmp_path: Path) -> None:
    script = str(Path(__file__).parent.parent / "examples" / "train_digits.py")
    outs = mpi_check(script, timeout=120, args=("--distributed", "--compile", "--epochs", "6",
                                                "--out", str(tmp_path)))
    out = outs[0]
    assert "on 2 ranks" in out and outs[1] == ""  # rank 0 alone prints
    assert float(re.search(r"test accuracy: ([0-9.]+)", out).group(1)) >= 0.9
    assert float(re.search(r"compiled: .* test accuracy ([0-9.]+)", out).group(1)) >= 0.9
    assert "reloaded model predicts the same: True" in out


def test_train_cnn_digits_distributed_on_two_ranks(tmp_path: Path) -> None:
    script = str(Path(__file__).parent.parent / "examples" / "train_cnn_digits.py")
    outs = mpi_check(script, timeout=120, args=("--distributed", "--compile", "--quick",
                                                "--out", str(tmp_path)))
    out = outs[0]
    assert "on 2 ranks" in out and outs[1] == ""
    assert float(re.search(r"test accuracy \(eval mode\): ([0-9.]+)", out).group(1)) >= 0.9
    assert "same test predictions: True" in out
    assert (tmp_path / "cnn_digits.npz").stat().st_size > 0


def test_ddp_refuses_dtypes_it_cannot_synchronise_at_construction() -> None:
    model = nn.Linear(2, 2, rng=0)
    model.weight = Tensor(np.ones((2, 2), np.float16)).requires_grad()
    with pytest.raises(ap.DTypeError, match="parameter 'weight'.*float16"):
        DistributedDataParallel(model)
