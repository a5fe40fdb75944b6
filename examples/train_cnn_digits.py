"""Train a small CNN on scikit-learn's handwritten digits (8x8 images, 10 classes) with aprender.

Conv2d-BatchNorm2d-ReLU-MaxPool2d twice, Flatten, Linear; AdamW with a cosine schedule. Shows a
progress bar with the running loss, prints the test accuracy of the model in ``eval()`` mode
(BatchNorm's running statistics), saves the model, reloads it into a fresh one and checks both
predict the same, times batched inference eager against ``ap.compile(model)``, and writes a PNG
of the loss and accuracy curves.

    python examples/train_cnn_digits.py [--epochs 20] [--out out/cnn_digits] [--compile]
                                        [--dtype float32|float64] [--quick]
    mpiexec -n 2 python examples/train_cnn_digits.py --distributed [--compile]

With --compile the same model is also trained from the same start with the whole training step
(forward, loss, backward, AdamW step, BatchNorm running statistics) compiled by ap.compile; both
times are printed, and how far apart the two runs' parameters and running statistics end. The
two runs round differently in float32 (each step's gradients agree to about 1e-6), so a max-pool
window whose two largest values lie within rounding of each other can pick different maxima, and
Adam and training carry such differences on (to about 1e-3 or 1e-2 in the parameters); with
--dtype float64 the runs end equal to about 1e-14. ``--quick`` is a short run on a subset for
CI. The convolutions have no bias: BatchNorm removes it, so its gradient is zero up to rounding,
which Adam would blow up into steps of size ``lr``.

With --distributed (under mpiexec) every rank trains a replica wrapped in
DistributedDataParallel on its shard of each epoch (per-rank batch batch-size / ranks): the
gradients are averaged over the ranks and BatchNorm's running statistics come from rank 0 at
every training forward. Rank 0 alone prints, saves and times inference.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import aprender as ap
from aprender import distributed as dist
from aprender import nn
from aprender.autograd import Tensor
from aprender.data import DataLoader

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def load_data(seed: int, subset: int | None = None,
              dtype: np.dtype | str = np.float32) -> tuple[np.ndarray, ...]:
    """Stratified 75/25 split of the digits as NCHW images in 0..1 (and int labels);
    ``subset`` keeps the first that many training images."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(dtype)[:, None]  # [1797, 1, 8, 8], pixels 0..16 -> 0..1
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, stratify=digits.target, random_state=seed)
    return x_train[:subset], x_test, y_train[:subset], y_test


def make_model(seed: int, dtype: np.dtype | str = np.float32) -> nn.Sequential:
    """1x8x8 -> 16x4x4 -> 32x2x2 -> 10 logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False, rng=seed, dtype=dtype),
        nn.BatchNorm2d(16, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False, rng=seed + 1, dtype=dtype),
        nn.BatchNorm2d(32, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10, rng=seed + 2, dtype=dtype))


def predict(model: Callable[[Tensor], Tensor], x: np.ndarray) -> np.ndarray:
    """Class predictions of ``model`` (in whatever mode it is in), without gradients."""
    with ap.no_grad():
        return model(Tensor(x)).data().argmax(axis=1)


@dataclass
class History:
    """Per-epoch mean training loss and test accuracy, training time and the compile cache."""

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    first_step_seconds: float = 0.0
    steps: int = 0
    cache: dict[str, Any] = field(default_factory=dict)


def train(model: nn.Module, args: argparse.Namespace, data: Sequence[np.ndarray],
          compiled: bool) -> History:
    """Train ``model`` with AdamW and a per-epoch cosine schedule; the step is compiled with
    ``ap.compile`` when ``compiled``. Test accuracy is measured in eval mode after each epoch
    (not counted in the time)."""
    x_train, x_test, y_train, y_test = data
    opt = ap.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = ap.optim.CosineAnnealingLR(opt, T_max=args.epochs)
    # drop_last: every batch has one shape (one compiled entry, no tiny BatchNorm batch)
    sampler = None
    if args.distributed:  # this rank's shard of each epoch, batch-size / ranks at a time
        sampler = dist.DistributedSampler(len(x_train), seed=args.seed)
        loader = DataLoader(x_train, y_train, batch_size=args.batch_size // dist.world_size(),
                            drop_last=True, sampler=sampler)
    else:
        loader = DataLoader(x_train, y_train, batch_size=args.batch_size, drop_last=True,
                            rng=args.seed)

    def step(xb: np.ndarray, yb: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(xb)), yb)
        loss.backward()
        opt.step()
        return loss

    run = ap.compile(step) if compiled else step
    history = History()
    bar = tqdm(range(args.epochs), desc="compiled" if compiled else "eager", unit="epoch",
               disable=dist.rank() != 0)
    for epoch in bar:
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        start = time.perf_counter()
        running = 0.0
        for i, (xb, yb) in enumerate(loader, 1):
            running += run(xb, yb).item()
            if history.steps == 0 and i == 1:
                history.first_step_seconds = time.perf_counter() - start
            bar.set_postfix(loss=f"{running / i:.4f}")
        sched.step()
        history.seconds += time.perf_counter() - start
        history.steps += len(loader)
        mean = Tensor(np.array(running / len(loader)))
        history.losses.append(dist.all_reduce(mean, "mean").item() if args.distributed
                              else mean.item())  # over every rank's batches
        model.eval()
        history.accuracies.append(float((predict(model, x_test) == y_test).mean()))
        bar.set_postfix(loss=f"{history.losses[-1]:.4f}", acc=f"{history.accuracies[-1]:.4f}")
    if compiled:
        history.cache = run.cache_info()
    return history


def max_state_difference(a: nn.Module, b: nn.Module) -> float:
    """Largest absolute difference between two models' parameters and buffers."""
    sa, sb = a.state_dict(), b.state_dict()
    return max(float(np.abs(sa[k].astype(np.float64) - sb[k]).max()) for k in sa)


def time_inference(fns: Sequence[Callable[[Tensor], Tensor]], x: np.ndarray,
                   rounds: int) -> list[float]:
    """Median seconds of one batched forward of ``x`` under ``no_grad`` for each function,
    timed in interleaved rounds so that machine noise falls on each alike."""
    times: list[list[float]] = [[] for _ in fns]
    with ap.no_grad():
        for _ in range(rounds):
            for fn, seconds in zip(fns, times, strict=True):
                start = time.perf_counter()
                fn(Tensor(x))
                seconds.append(time.perf_counter() - start)
    return [float(np.median(seconds)) for seconds in times]


def plot(history: History, path: Path) -> None:
    epochs = range(1, len(history.losses) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    left.plot(epochs, history.losses, marker="o", markersize=3)
    left.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="loss")
    right.plot(epochs, history.accuracies, marker="o", markersize=3, color="tab:green")
    right.set(xlabel="epoch", ylabel="test accuracy (eval mode)",
              title=f"accuracy (final {history.accuracies[-1]:.4f})")
    fig.suptitle("aprender CNN on digits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the example (``argv``: command-line arguments); returns the printed numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--out", default="out/cnn_digits", help="folder for the model and plot")
    parser.add_argument("--compile", action="store_true",
                        help="also train with a compiled step and compare times and results")
    parser.add_argument("--quick", action="store_true",
                        help="a short run for CI: at most 4 epochs on 640 training images")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over the ranks of mpiexec -n N")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = min(args.epochs, 4)
    if args.distributed:
        dist.init()
    results: dict[str, Any] = {}

    def replica(seed: int) -> nn.Module:
        model = make_model(seed, args.dtype)
        return dist.DistributedDataParallel(model) if args.distributed else model

    def unwrapped(model: nn.Module) -> nn.Module:
        return model.module if args.distributed else model

    data = load_data(args.seed, 640 if args.quick else None, args.dtype)
    x_train, x_test, y_train, y_test = data
    say = print if dist.rank() == 0 else (lambda *_: None)  # the other ranks print nothing
    ranks = f" on {dist.world_size()} ranks" if args.distributed else ""
    say(f"digits: {len(x_train)} training and {len(x_test)} test images of "
          f"{'x'.join(map(str, x_train.shape[1:]))} (NCHW {args.dtype}){ranks}")
    history = train(ddp := replica(args.seed), args, data, compiled=False)
    model = unwrapped(ddp)
    results.update(losses=history.losses, accuracy=history.accuracies[-1])
    say(f"eager: {history.steps} steps in {history.seconds:.2f} s "
          f"({history.seconds / history.steps * 1e6:.0f} us/step); mean loss "
          f"{history.losses[0]:.4f} (epoch 1) -> {history.losses[-1]:.4f} "
          f"(epoch {len(history.losses)})")
    say(f"test accuracy (eval mode): {history.accuracies[-1]:.4f}")

    if args.compile:
        fast = train(fast_ddp := replica(args.seed), args, data, compiled=True)
        fast_model = unwrapped(fast_ddp)
        rest = (fast.seconds - fast.first_step_seconds) / (fast.steps - 1)
        say(f"compiled: {fast.steps} steps in {fast.seconds:.2f} s (first step, traced and "
              f"compiled: {fast.first_step_seconds:.2f} s; then {rest * 1e6:.0f} us/step); "
              f"speed-up {history.seconds / fast.seconds:.2f}x; "
              f"{fast.cache['compiles']} compile, {fast.cache['hits']} cache hits, "
              f"{fast.cache['eager_calls']} eager calls")
        results.update(
            compiled_losses=fast.losses, compiled_accuracy=fast.accuracies[-1],
            cache=fast.cache, max_difference=max_state_difference(model, fast_model),
            same_predictions=bool((predict(fast_model, x_test) == predict(model, x_test)).all()))
        loss_difference = max(abs(a - b) for a, b in zip(fast.losses, history.losses, strict=True))
        say(f"compiled vs eager after {fast.steps} steps: test accuracy "
              f"{fast.accuracies[-1]:.4f} vs {history.accuracies[-1]:.4f}; max abs difference "
              f"of the parameters and running statistics {results['max_difference']:.3g}, "
              f"of the epochs' mean losses {loss_difference:.3g}; same test predictions: "
              f"{results['same_predictions']}")

    if dist.rank() != 0:
        return results
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out / "cnn_digits.npz"))
    reloaded = make_model(args.seed + 100, args.dtype)  # other weights, default statistics
    reloaded.load(str(out / "cnn_digits.npz"))
    reloaded.eval()
    with ap.no_grad():
        results["reload_same"] = bool(np.array_equal(reloaded(Tensor(x_test)).data(),
                                                     model(Tensor(x_test)).data()))
    say(f"saved to {out / 'cnn_digits.npz'}; reloaded model gives identical outputs: "
          f"{results['reload_same']}")

    compiled_model = ap.compile(model)
    x_batch = np.concatenate([x_test] * 4)  # a larger batch: 4 x the test set
    rounds = 5 if args.quick else 30
    with ap.no_grad():
        results["inference_same"] = bool(np.array_equal(compiled_model(Tensor(x_batch)).data(),
                                                         model(Tensor(x_batch)).data()))
    eager_s, compiled_s = time_inference([model, compiled_model], x_batch, rounds)
    say(f"inference on {len(x_batch)} images (eval, no_grad, median of {rounds}): eager "
          f"{eager_s * 1e3:.2f} ms, compiled {compiled_s * 1e3:.2f} ms "
          f"({eager_s / compiled_s:.2f}x); compiled outputs equal eager's: "
          f"{results['inference_same']}")

    results["plot"] = out / "cnn_digits_curves.png"
    plot(history, results["plot"])
    say(f"loss and accuracy curves: {results['plot']}")
    return results


if __name__ == "__main__":
    main()
