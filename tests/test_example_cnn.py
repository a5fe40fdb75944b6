"""examples/train_cnn_digits.py in its --quick form: it learns, compiled equals eager, the
reloaded model and the compiled inference give identical outputs, the PNG is written."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_cnn_digits.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_cnn_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_quick_run_learns_compiled_equals_eager_and_reloads(example, tmp_path, capsys) -> None:
    results = example.main(["--quick", "--compile", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    losses = results["losses"]
    assert len(losses) == 4 and losses[-1] < 0.2 * losses[0]
    assert results["accuracy"] > 0.8  # chance is 0.1
    assert f"test accuracy (eval mode): {results['accuracy']:.4f}" in out
    # the whole step compiled once and reused: no eager fallback, no retrace
    assert results["cache"]["compiles"] == 1 and results["cache"]["eager_calls"] == 0
    assert results["cache"]["hits"] == 79
    # float32: the runs round differently (max-pool near-ties can then pick different maxima,
    # so the parameters drift apart by up to ~1e-2); the float64 test below is the exact check
    assert max(abs(a - b) for a, b in
               zip(results["compiled_losses"], losses, strict=True)) < 1e-3
    assert abs(results["compiled_accuracy"] - results["accuracy"]) <= 0.01
    assert results["reload_same"] and "reloaded model gives identical outputs: True" in out
    assert results["inference_same"] and "compiled outputs equal eager's: True" in out
    assert (tmp_path / "cnn_digits.npz").stat().st_size > 0
    assert results["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_float64_compiled_training_ends_where_eager_does(example, tmp_path) -> None:
    results = example.main(["--quick", "--epochs", "2", "--compile", "--dtype", "float64",
                            "--out", str(tmp_path)])
    assert results["max_difference"] < 1e-10  # parameters, running mean/var, batches tracked
    assert max(abs(a - b) for a, b in
               zip(results["compiled_losses"], results["losses"], strict=True)) < 1e-12
