"""examples/char_transformer.py in its --quick form: it learns, measures the bigram baseline,
samples from its vocabulary, writes its plot, and trains compiled exactly as eagerly."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import aprender as ap

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "char_transformer.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("char_transformer_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    main = _example().main
    out = tmp_path_factory.mktemp("char_transformer")
    return {mode: main(["--quick", "--sample-len", "50", "--out", str(out / mode)]
                       + (["--compile"] if mode == "compiled" else []))
            for mode in ("eager", "compiled")}


def test_quick_run_learns_and_measures_the_bigram_baseline(runs: dict) -> None:
    run = runs["eager"]
    losses, vocab = run["losses"], run["vocab"]
    assert len(vocab) > 90
    assert abs(losses[0] - math.log(len(vocab))) < 0.3  # starts near uniform
    assert np.mean(losses[-10:]) < losses[0] - 1.2  # well below the start
    assert run["val_loss"] < losses[0] - 1.2
    assert 1.5 < run["bigram"] < 3.0  # the baseline was measured, and is a bigram's


def test_quick_run_samples_from_the_vocabulary_with_one_compiled_forward(runs: dict) -> None:
    run = runs["eager"]
    assert len(run["sample"]) == 50
    assert set(run["sample"]) <= set(run["vocab"])
    assert run["sample_cache"]["misses"] == 1 and run["sample_cache"]["hits"] == 49


def test_quick_run_writes_the_loss_curve(runs: dict) -> None:
    for run in runs.values():
        assert Path(run["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compiled_quick_run_trains_as_the_eager_one(runs: dict) -> None:
    eager, compiled = runs["eager"], runs["compiled"]
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([v for _, v in compiled["val_points"]],
                               [v for _, v in eager["val_points"]], rtol=1e-5, atol=1e-5)
    assert compiled["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-5)
    assert compiled["cache"]["misses"] == 1  # one trace; every later step a cache hit
    assert compiled["sample"] == eager["sample"]


def test_right_padded_window_gives_the_unpadded_logits() -> None:
    ct = _example()
    model = ct.CharTransformer(20, 16, 2, 2, 12, 0.1, True, seed=3)
    model.eval()
    ids = np.array([[4, 7, 1, 19, 0]])
    forward = ap.compile(model)
    with ap.no_grad():
        unpadded = model(ids).data()
        window = np.full((1, 12), 5)
        window[0, :5] = ids
        padded = forward(window).data()
    np.testing.assert_allclose(padded[:, :5], unpadded, rtol=1e-5, atol=1e-6)


def test_tied_model_trains_compiled_as_eagerly() -> None:
    ct = _example()
    text = ct.load_text()[:20000]
    itos = sorted(set(text))
    ids = np.array([itos.index(c) for c in text])
    losses = []
    for compiled in (False, True):
        args = ct.parse_args(["--quick", "--tie", "--steps", "12", "--eval-every", "6"]
                             + (["--compile"] if compiled else []))
        model = ct.CharTransformer(len(itos), 16, 2, 1, args.context, 0.1, True, seed=0)
        assert model.head is None
        losses.append(ct.train(model, args, ids[:18000], ids[18000:])["losses"])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5, atol=1e-5)
