"""Train an MLP on scikit-learn's handwritten digits (8x8 images, 10 classes) with aprender.

Shows a progress bar with the running loss, prints test accuracy, saves the model, reloads it
into a fresh model and checks both predict the same, and writes a loss-curve PNG.

    python examples/train_digits.py [--epochs 30] [--out out/digits] [--compile]
    mpiexec -n 2 python examples/train_digits.py --distributed [--compile]

With --compile the same model is trained twice from the same start, eagerly and with the
training step compiled by ap.compile, and both times are printed. With --distributed (under
mpiexec) every rank trains a replica wrapped in DistributedDataParallel on its shard of each
epoch (DistributedSampler), with a per-rank batch of batch-size / ranks, so the global batch and
the number of steps match one process; rank 0 alone prints, evaluates and saves.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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


def load_data(seed: int) -> tuple[np.ndarray, ...]:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel values 0..16 -> 0..1
    return tuple(train_test_split(x, digits.target, test_size=0.25, stratify=digits.target,
                                  random_state=seed))


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with ap.no_grad():
        return model(Tensor(x)).data().argmax(axis=1)


def make_model(args: argparse.Namespace) -> nn.Module:
    """The MLP (wrapped in DistributedDataParallel with --distributed: ``.module`` is the MLP)."""
    model = nn.MLP(64, args.hidden, 10, rng=args.seed)
    return dist.DistributedDataParallel(model) if args.distributed else model


def train(model: nn.Module, args: argparse.Namespace, x_train: np.ndarray, y_train: np.ndarray,
          compiled: bool) -> tuple[list[float], float, int]:
    """Train ``model``; returns the mean loss per epoch (over every rank), seconds and steps."""
    opt = ap.optim.Adam(model.parameters(), lr=args.lr)
    sched = ap.optim.CosineAnnealingLR(opt, T_max=args.epochs)
    if args.distributed:
        sampler = dist.DistributedSampler(len(x_train), shuffle=True, seed=args.seed)
        loader = DataLoader(x_train, y_train, sampler=sampler,
                            batch_size=max(1, args.batch_size // dist.world_size()))
    else:
        sampler = None
        loader = DataLoader(x_train, y_train, batch_size=args.batch_size, rng=args.seed)

    def step(xb: np.ndarray, yb: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(xb)), yb)
        loss.backward()
        opt.step()
        return loss

    run = ap.compile(step) if compiled else step
    losses: list[float] = []
    start = time.perf_counter()
    bar = tqdm(range(args.epochs), desc="compiled" if compiled else "eager", unit="epoch",
               disable=dist.rank() != 0)
    for epoch in bar:
        if sampler is not None:
            sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        running = 0.0
        for xb, yb in loader:
            running += run(xb, yb).item()
        sched.step()
        mean = Tensor(np.array(running / len(loader)))
        losses.append(dist.all_reduce(mean, "mean").item() if args.distributed else mean.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return losses, time.perf_counter() - start, args.epochs * len(loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/digits", help="folder for the model and the plot")
    parser.add_argument("--compile", action="store_true",
                        help="also train with a compiled step and compare the times")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over the ranks of mpiexec -n N")
    args = parser.parse_args()
    if args.distributed:
        dist.init()
    main_rank = dist.rank() == 0

    x_train, x_test, y_train, y_test = load_data(args.seed)
    if main_rank:
        ranks = f" on {dist.world_size()} ranks" if args.distributed else ""
        print(f"digits: {len(x_train)} training and {len(x_test)} test images of 8x8 pixels"
              f"{ranks}")
    ddp = make_model(args)
    losses, seconds, steps = train(ddp, args, x_train, y_train, compiled=False)
    model = ddp.module if args.distributed else ddp
    if main_rank:
        print(f"trained {steps} steps in {seconds:.2f} s ({seconds / steps * 1e6:.0f} us/step, "
              f"eager)")
    if args.compile:
        fast_ddp = make_model(args)
        _, fast_seconds, fast_steps = train(fast_ddp, args, x_train, y_train, compiled=True)
        fast_model = fast_ddp.module if args.distributed else fast_ddp
        fast_accuracy = float((predict(fast_model, x_test) == y_test).mean())
        if main_rank:
            print(f"compiled: {fast_steps} steps in {fast_seconds:.2f} s "
                  f"({fast_seconds / fast_steps * 1e6:.0f} us/step, compile included); "
                  f"speed-up {seconds / steps / (fast_seconds / fast_steps):.1f}x; "
                  f"test accuracy {fast_accuracy:.4f}")
    if not main_rank:  # the replicas are equal: rank 0 evaluates and saves
        return

    accuracy = float((predict(model, x_test) == y_test).mean())
    print(f"test accuracy: {accuracy:.4f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out / "digits_mlp.npz"))
    reloaded = nn.MLP(64, args.hidden, 10, rng=args.seed + 1)
    reloaded.load(str(out / "digits_mlp.npz"))
    same = bool((predict(reloaded, x_test) == predict(model, x_test)).all())
    print(f"saved to {out / 'digits_mlp.npz'}; reloaded model predicts the same: {same}")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(losses) + 1), losses, marker="o", markersize=3)
    ax.set(xlabel="epoch", ylabel="mean training loss", yscale="log",
           title=f"aprender MLP on digits (test accuracy {accuracy:.3f})")
    fig.tight_layout()
    fig.savefig(out / "digits_loss.png", dpi=100)
    print(f"loss curve: {out / 'digits_loss.png'}")


if __name__ == "__main__":
    main()
