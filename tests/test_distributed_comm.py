"""``aprender.distributed`` collectives, the ``all_reduce`` op and ``DistributedSampler``.

Most tests run 2 ranks under ``mpiexec`` (``tests/mpi_run.py``); each rank prints JSON and
the references are computed here with numpy from both ranks' inputs.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
from mpi_run import mpi_check, mpi_run

import aprender as ap
from aprender import distributed as dist
from aprender.data import DataLoader
from aprender.distributed import DistributedSampler
from aprender.errors import CompileError
from aprender.ir.ops import collective

SHAPES = [(), (3,), (2, 3)]
DTYPES = ["float32", "float64"]


def rank_input(rank: int, shape: tuple, dtype: str) -> np.ndarray:
    """The values rank ``rank`` contributes (different on every rank)."""
    size = int(np.prod(shape))
    return (np.linspace(-1.5, 2.0, size) * (rank + 1) + 0.3 * rank).reshape(shape).astype(dtype)


PRELUDE = f"""
import json
import numpy as np
import aprender as ap
from aprender import distributed as dist

{inspect.getsource(rank_input)}
"""


def _outputs(stdout: list[str]) -> list[dict]:
    return [json.loads(out.strip().splitlines()[-1]) for out in stdout]


@pytest.fixture(scope="module")
def collectives() -> list[dict]:
    """One 2-rank run of every collective on every dtype and shape; each rank's results."""
    code = PRELUDE + """
dist.init(timeout=30)
r = dist.rank()
out = {"rank": r, "size": dist.world_size(), "initialized": dist.is_initialized()}
for dtype in ("float32", "float64"):
    for shape in [(), (3,), (2, 3)]:
        x = rank_input(r, shape, dtype)
        key = f"{dtype}{list(shape)}"
        s = dist.all_reduce(ap.Tensor(x), "sum")
        m = dist.all_reduce(ap.Tensor(x), "mean")
        b = ap.Tensor(x.copy())
        same = [dist.broadcast(b, root=1) is b]
        g = dist.all_gather(ap.Tensor(x))
        low = dist.allreduce_array(x, "mean")
        pending = dist.iallreduce_start(x.T, "sum")
        late = pending.wait()
        buf = np.empty_like(x)
        into = dist.allreduce_array(x, "sum", out=buf)
        inplace = x.copy()
        same += [into is buf, dist.iallreduce_start(inplace, "mean", out=inplace,
                                                    check=False).wait() is inplace]
        for name, t in (("sum", s), ("mean", m), ("broadcast", b), ("gather", g)):
            a = t.data()
            out[f"{name}/{key}"] = [a.dtype.name, list(a.shape), a.tolist()]
        for name, a in (("array_mean", low), ("isum_T", late), ("into", buf),
                        ("inplace", inplace)):
            out[f"{name}/{key}"] = [a.dtype.name, list(a.shape), a.tolist()]
        out[f"same/{key}"] = same
ints = dist.allreduce_array(np.arange(4, dtype=np.int64) * (r + 1), "sum")
out["int64_sum"] = [ints.dtype.name, ints.tolist()]
dist.barrier()
sampler = dist.DistributedSampler(10, seed=3)
out["sampler"] = []
for epoch in (0, 1):
    sampler.set_epoch(epoch)
    out["sampler"].append(list(sampler))
print(json.dumps(out))
"""
    return _outputs(mpi_check(code, timeout=60))


def _check(entry: list, expected: np.ndarray) -> None:
    dtype, shape, values = entry
    assert dtype == expected.dtype.name and tuple(shape) == expected.shape
    np.testing.assert_array_equal(np.array(values, dtype=dtype).reshape(shape), expected)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_collectives_on_two_ranks(collectives: list[dict], dtype: str, shape: tuple) -> None:
    x0, x1 = rank_input(0, shape, dtype), rank_input(1, shape, dtype)
    key = f"{dtype}{list(shape)}"
    for r, out in enumerate(collectives):
        assert (out["rank"], out["size"], out["initialized"]) == (r, 2, True)
        _check(out[f"sum/{key}"], x0 + x1)
        _check(out[f"mean/{key}"], (x0 + x1) / np.array(2, dtype))
        _check(out[f"array_mean/{key}"], (x0 + x1) / np.array(2, dtype))
        _check(out[f"isum_T/{key}"], x0.T + x1.T)
        _check(out[f"into/{key}"], x0 + x1)
        _check(out[f"inplace/{key}"], (x0 + x1) / np.array(2, dtype))
        _check(out[f"broadcast/{key}"], x1)
        _check(out[f"gather/{key}"], np.stack([x0, x1]))
        assert out[f"same/{key}"] == [True, True, True]  # out= and broadcast give their array


def test_integer_sum_and_sampler_on_two_ranks(collectives: list[dict]) -> None:
    for out in collectives:
        assert out["int64_sum"] == ["int64", [0, 3, 6, 9]]
    for epoch in (0, 1):
        permutation = np.random.default_rng([3, epoch]).permutation(10)
        shards = [out["sampler"][epoch] for out in collectives]
        assert shards == [permutation[0::2].tolist(), permutation[1::2].tolist()]
        assert sorted(shards[0] + shards[1]) == list(range(10))
    assert collectives[0]["sampler"][0] != collectives[0]["sampler"][1]


def test_all_reduce_compiled_equals_eager_and_its_gradient_on_two_ranks() -> None:
    code = PRELUDE + """
dist.init(timeout=30)
r = dist.rank()
x = rank_input(r, (4, 3), "float64")

def step(x, w):
    y = (ap.Tensor(x) @ w).tanh()
    loss = (dist.all_reduce(y, "mean") ** 2).sum()
    loss.backward()
    return loss

fast = ap.compile(step)
out = {}
for name, fn in (("eager", step), ("compiled1", fast), ("compiled2", fast)):
    w = ap.Tensor(rank_input(r, (3,), "float64") + 0.5).requires_grad()
    loss = fn(x, w)
    out[name] = [loss.item(), w.grad().data().tolist()]
out["kernel_calls"] = fast.source().count("k_all_reduce(")
out["in_ir"] = "all_reduce" in fast.ir()
print(json.dumps(out))
"""
    outs = _outputs(mpi_check(code, timeout=60))
    xs = [rank_input(r, (4, 3), "float64") for r in range(2)]
    ws = [rank_input(r, (3,), "float64") + 0.5 for r in range(2)]
    ys = [np.tanh(x @ w) for x, w in zip(xs, ws, strict=True)]
    mean = (ys[0] + ys[1]) / 2
    loss = float((mean ** 2).sum())
    # the global loss is the sum of the ranks' (equal) losses: d/dy_r = 2 * mean
    grads = [x.T @ (2 * mean * (1 - y ** 2)) for x, y in zip(xs, ys, strict=True)]
    for r, out in enumerate(outs):
        assert out["kernel_calls"] == 2 and out["in_ir"]  # forward and backward all-reduce
        for name in ("eager", "compiled1", "compiled2"):
            assert out[name][0] == pytest.approx(loss, rel=1e-12)
            np.testing.assert_allclose(out[name][1], grads[r], rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(out["compiled2"][1], out["eager"][1])


def test_a_rank_that_raises_aborts_the_job_with_its_message() -> None:
    result = mpi_run(PRELUDE + """
dist.init(timeout=60)
if dist.rank() == 1:
    raise ValueError("rank one broke")
dist.barrier()
print("rank 0 passed the barrier")
""", timeout=30)
    assert result.returncode != 0, result.report()
    assert "rank 1: ValueError: rank one broke" in result.stderr[1], result.report()
    assert "passed the barrier" not in result.stdout[0]
    assert "timed out" not in result.stderr[0], "the abort, not the timeout, must stop rank 0"


def test_a_rank_that_skips_a_collective_makes_the_others_time_out_naming_it() -> None:
    result = mpi_run(PRELUDE + """
import time
dist.init(timeout=1.0)
if dist.rank() == 0:
    dist.all_reduce(ap.Tensor(np.ones(3)), "sum")
else:
    time.sleep(60)
""", timeout=30)
    assert result.returncode != 0, result.report()
    assert "DistributedError" in result.stderr[0], result.report()
    assert "all_reduce(sum) of f64[3]: timed out after 1 s on rank 0 of 2" in result.stderr[0]


def test_ranks_with_mismatched_shapes_fail_naming_both() -> None:
    result = mpi_run(PRELUDE + """
dist.init(timeout=30)
x = ap.Tensor(np.ones((2, 3) if dist.rank() == 0 else (3,), np.float32))
dist.all_reduce(x, "mean")
""", timeout=30)
    assert result.returncode != 0, result.report()
    stderr = "".join(result.stderr)
    assert ("the ranks disagree on what they exchange (rank 0: all_reduce(mean) of f32[2,3]; "
            "rank 1: all_reduce(mean) of f32[3])") in stderr, result.report()


def _python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (no mpiexec); its last line of output, as JSON."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_single_process_init_without_mpiexec() -> None:
    out = _python(PRELUDE + """
before = [dist.is_initialized(), dist.rank(), dist.world_size()]
dist.init()
dist.init(timeout=5)
x = ap.Tensor(np.arange(6.0).reshape(2, 3)).requires_grad()
y = dist.all_reduce(x, "mean")
(y * y).sum().backward()
dist.barrier()
b = dist.broadcast(ap.Tensor(np.ones(2)))
print(json.dumps({"before": before, "after": [dist.is_initialized(), dist.rank(),
                                              dist.world_size()],
                  "y": y.data().tolist(), "same": bool(np.shares_memory(y.data(), x.data())),
                  "grad": x.grad().data().tolist(), "b": b.data().tolist(),
                  "gather": dist.all_gather(ap.Tensor(np.ones(2))).shape,
                  "sum": dist.allreduce_array(np.float32(2.5), "sum").tolist()}))
""")
    assert out["before"] == [False, 0, 1] and out["after"] == [True, 0, 1]
    assert out["y"] == [[0, 1, 2], [3, 4, 5]] and not out["same"]
    assert out["grad"] == [[0, 2, 4], [6, 8, 10]]
    assert out["b"] == [1, 1] and out["gather"] == [1, 2] and out["sum"] == 2.5


def test_importing_aprender_does_not_import_mpi4py_and_init_says_which_extra() -> None:
    out = _python("""
import json, sys
import aprender as ap
import aprender.distributed as dist
loaded = "mpi4py" in sys.modules
sys.modules["mpi4py"] = None  # as if it were not installed
try:
    dist.init()
    message = None
except ImportError as e:
    message = str(e)
print(json.dumps({"loaded": loaded, "message": message,
                  "works": (ap.Tensor([1.0, 2.0]) * 2).sum().item()}))
""")
    assert out["loaded"] is False
    assert "pip install 'aprender[mpi]'" in out["message"]
    assert out["works"] == 6.0


def test_compiler_keeps_every_all_reduce_even_unused_or_repeated() -> None:
    calls: list[str] = []

    def counting(x: np.ndarray, op: str, group: str) -> np.ndarray:
        calls.append(op)
        return x * 2.0

    def f(x: ap.Tensor) -> ap.Tensor:
        a, b = x.all_reduce(), x.all_reduce()
        x.all_reduce("mean")  # unused: still a collective every rank must join
        return a + b

    fast = ap.compile(f)
    collective.set_backend(counting)
    try:
        fast(ap.Tensor(np.ones(3)))  # traced (eagerly) and run compiled
        calls.clear()
        out = fast(ap.Tensor(np.ones(3)))
    finally:
        collective.set_backend(None)
    assert calls == ["sum", "sum", "mean"]
    assert out.data().tolist() == [4.0, 4.0, 4.0]


def test_broadcast_and_all_gather_refuse_to_be_compiled() -> None:
    for fn in (dist.broadcast, dist.all_gather):
        fast = ap.compile(lambda t, fn=fn: fn(t) * 2.0)
        with pytest.raises(CompileError, match="not inside a compiled or traced function"):
            fast(ap.Tensor(np.ones(2)))


def test_all_reduce_refuses_bad_arguments() -> None:
    x = ap.Tensor(np.ones(3))
    with pytest.raises(ap.ShapeError, match="op must be one of"):
        x.all_reduce("max")
    with pytest.raises(ap.DTypeError, match="mean needs a float dtype"):
        ap.Tensor(np.arange(3)).all_reduce("mean")
    assert ap.Tensor(np.arange(3)).all_reduce("sum").data().tolist() == [0, 1, 2]


def test_sampler_shards_are_disjoint_cover_the_data_and_pad_like_pytorch() -> None:
    for n, drop_last in ((11, False), (11, True), (12, False)):
        shards = [DistributedSampler(n, 3, r, seed=5, drop_last=drop_last) for r in range(3)]
        for s in shards:
            s.set_epoch(2)
        lists = [list(s) for s in shards]
        permutation = np.random.default_rng([5, 2]).permutation(n)
        per_rank = n // 3 if drop_last else -(-n // 3)
        padded = np.resize(permutation, 3 * per_rank)
        assert lists == [padded[r::3].tolist() for r in range(3)]
        assert all(len(s) == per_rank == len(lst) for s, lst in zip(shards, lists, strict=True))
        flat = sum(lists, [])
        if drop_last or n % 3 == 0:
            assert len(set(flat)) == len(flat)  # disjoint
        else:
            assert set(flat) == set(range(n))  # covered, padded by repeating the start
    ordered = DistributedSampler(5, 2, 1, shuffle=False)
    assert list(ordered) == [1, 3, 0]
    with pytest.raises(ValueError, match="rank 2 is not in"):
        DistributedSampler(5, 2, 2)


def test_dataloader_takes_a_sampler() -> None:
    x = np.arange(10.0)[:, None]
    y = np.arange(10)
    sampler = DistributedSampler(10, num_replicas=2, rank=1, seed=1)
    loader = DataLoader(x, y, batch_size=2, sampler=sampler)
    assert len(loader) == 3
    batches = [b[1].tolist() for b in loader]
    assert sum(batches, []) == list(sampler) and [len(b) for b in batches] == [2, 2, 1]
    assert np.array_equal(np.concatenate([b[0][:, 0] for b in loader]), list(sampler))
    with pytest.raises(ValueError, match="exclude each other"):
        DataLoader(x, y, sampler=sampler, shuffle=True)
    assert len(DataLoader(x, y, batch_size=2, sampler=sampler, drop_last=True)) == 2
