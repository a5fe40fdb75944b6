"""The examples run as programs and print the numbers the seed's comments promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout


def test_autograd_basics_prints_seed_numbers() -> None:
    out = _run("autograd_basics.py")
    for line in ("x.grad = [0.5, 0.5, 0.5]", "w.grad = [1.0, 2.0, 3.0]",
                 "a + b = [5.0, 7.0, 9.0]", "a - b = [-3.0, -3.0, -3.0]",
                 "a * b = [4.0, 10.0, 18.0]", "a^2 = [1.0, 4.0, 9.0]",
                 "sum = 10.0 mean = 2.5", "sum_axis(0) = [4.0, 6.0] sum_axis(1) = [3.0, 7.0]",
                 "matmul = [[19.0, 22.0], [43.0, 50.0]]", "relu = [0.0, 0.0, 1.0]",
                 "sigmoid = [0.27, 0.5, 0.73]", "tanh = [-0.76, 0.0, 0.76]",
                 "gelu = [-0.16, 0.0, 0.84]", "leaky_relu = [-0.01, 0.0, 1.0]",
                 "softmax = [0.09, 0.24, 0.67]", "x + bias = [[11.0, 22.0], [13.0, 24.0]]",
                 "bias.grad = [2.0, 2.0]"):
        assert line in out, line


def test_autograd_training_learns_w_2_b_1() -> None:
    out = _run("autograd_training.py")
    assert "Learned: w = 2.00, b = 1.00" in out
    losses = [float(v) for v in re.findall(r"loss = ([0-9.]+)", out)]
    assert losses[0] > 10 and losses[-1] < 1e-4


def test_gradient_check_passes() -> None:
    out = _run("gradient_check.py")
    assert "Autograd: [2.0, 4.0, 6.0]" in out
    assert "Numerical: [2.0, 4.0, 6.0]" in out
    assert "Gradient check passed" in out


def test_seed_mlp_example_trains_and_infers_without_grad() -> None:
    out = _run("seed_mlp.py")
    before = float(re.search(r"before training: ([0-9.]+)", out).group(1))
    after = float(re.search(r"after training: ([0-9.]+)", out).group(1))
    assert after < 0.05 * before
    assert "inference output: shape [64, 1], requires grad: False" in out


def test_train_digits_short_run_reaches_90_percent(tmp_path) -> None:
    out = _run("train_digits.py", "--epochs", "6", "--out", str(tmp_path), "--compile")
    compiled = float(re.search(r"compiled: .* test accuracy ([0-9.]+)", out).group(1))
    assert compiled >= 0.9
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy >= 0.9
    assert "reloaded model predicts the same: True" in out
    assert (tmp_path / "digits_mlp.npz").stat().st_size > 0
    assert (tmp_path / "digits_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_ir_prints_graphs_and_writes_dot(tmp_path) -> None:
    out = _run("inspect_ir.py", str(tmp_path))
    assert "graph mlp(x: f32[8,4], model.fc1.weight: f32[4,16]" in out
    assert "cross_entropy_10: f32[8] = cross_entropy add_7, one_hot_9" in out
    assert "one_hot_9: f32[8,3] = one_hot const_8 [num_classes=3, dtype=float32]" in out
    interp, eager = re.search(r"reference interpreter: ([0-9.]+)\s+eager: ([0-9.]+)", out).groups()
    assert interp == eager
    assert "JSON round trip prints the same graph: True" in out
    assert (tmp_path / "loss.dot").read_text().startswith('digraph "loss"')


def test_compile_tour_shows_passes_source_and_cache() -> None:
    out = _run("compile_tour.py")
    assert "[bwd]" in out and "[update]" in out and "fused[" in out
    assert "def fn_train_step(" in out and "dot(v_x, v_model_fc1_weight, out=buf0)" in out
    assert "cache: 51 hits, 2 misses, 2 compiles" in out  # 50 + the call after the lr change
    assert "x: array float32[16, 8] -> array float32[8, 8]" in out
    before, after = (float(v) for v in re.findall(r"loss ([0-9.]+)", out)[:2])
    assert after < before


def test_compiling_example_shows_equal_results_guards_and_a_refusal() -> None:
    out = _run("compiling.py")
    losses = re.findall(r"eager loss (\S+)  compiled loss (\S+)", out)
    assert len(losses) == 4 and all(a == b for a, b in losses)
    assert "parameters equal after 4 steps: True" in out
    assert "model.fc1.training == True: True -> False" in out
    assert "model.fc1.weight is <tensor float64[4, 8]" in out
    assert "refused: StateChange" in out and "sched.last_epoch: 1 -> 2" in out


def test_per_example_grads_match_a_loop() -> None:
    out = _run("per_example_grads.py", "--batch", "16", "--repeats", "1")
    assert "fc1.weight [16, 64, 128]" in out and "fc3.bias [16, 10]" in out
    worst = float(re.search(r"backward passes: ([0-9.e+-]+)", out).group(1))
    assert worst < 1e-5
    norms = [float(v) for v in re.search(r"\(first 8\): (.*)", out).group(1).split(", ")]
    assert len(norms) == 8 and all(n > 0 for n in norms)


def test_newton_converges_quadratically() -> None:
    out = _run("newton.py")
    norms = [float(v) for v in re.findall(r"step \d: loss [0-9.]+  \|grad\| ([0-9.e+-]+)", out)]
    assert norms[0] > 0.1 and norms[3] < 1e-5 and norms[4] < 1e-11
    steps = int(re.search(r"needs (\d+) steps", out).group(1))
    assert steps > 6
