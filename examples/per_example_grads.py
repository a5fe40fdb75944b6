"""Per-example gradients of the digits MLP with ``vmap(grad(loss))``, compiled.

Each of 64 examples gets its own gradient of every parameter (what differential privacy,
influence functions and gradient-noise studies need), computed as one batched computation by
``aprender.func.vmap`` over ``aprender.func.grad`` of a single-example loss that runs the
model with ``functional_call``. The result is checked against a Python loop of single-example
backward passes, and the times of the loop, eager vmap and compiled vmap are printed.

    python examples/per_example_grads.py [--batch 64] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.datasets import load_digits

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.func import functional_call, grad, vmap


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    digits = load_digits()
    xs = (digits.data[:args.batch] / 16.0).astype(np.float32)
    ys = digits.target[:args.batch]
    model = nn.MLP(64, 128, 10, rng=0)
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss(p: dict, x: Tensor, y: Tensor) -> Tensor:
        """The loss of ONE example (x: [64], y: a class index)."""
        logits = functional_call(model, p, (x.reshape((1, 64)),))
        return nn.cross_entropy(logits, y.reshape((1,)))

    def per_example(p: dict, x: Tensor, y: Tensor) -> dict:
        return vmap(grad(loss), in_axes=(None, 0, 0))(p, x, y)

    fast = ap.compile(per_example)
    x_t, y_t = Tensor(xs), Tensor(ys)
    grads = fast(params, x_t, y_t)

    def loop() -> dict:
        out: dict = {name: [] for name in params}
        for x, y in zip(xs, ys, strict=True):
            model.zero_grad()
            nn.cross_entropy(model(Tensor(x[None])), np.array([y])).backward()
            for name, p in model.named_parameters():
                out[name].append(p.grad().data().copy())
        return {name: np.stack(v) for name, v in out.items()}

    reference = loop()
    worst = max(float(np.abs(grads[n].data() - reference[n]).max()) for n in params)
    print(f"per-example gradients of {len(params)} parameters for {args.batch} examples: "
          + ", ".join(f"{n} {list(grads[n].shape)}" for n in params))
    print(f"largest difference from a loop of single-example backward passes: {worst:.2e}")
    assert worst < 1e-5

    norms = np.sqrt(sum((grads[n].data().reshape(args.batch, -1) ** 2).sum(axis=1)
                        for n in params))
    print("per-example gradient norms (first 8): "
          + ", ".join(f"{v:.3f}" for v in norms[:8]))
    clip = float(np.median(norms))
    scale = np.minimum(1.0, clip / norms)
    clipped = {n: (grads[n].data() * scale.reshape((-1,) + (1,) * (grads[n].ndim - 1))).mean(0)
               for n in params}
    print(f"clipped to the median norm {clip:.3f} and averaged (a DP-SGD step's gradient): "
          f"|g| = {np.sqrt(sum((g ** 2).sum() for g in clipped.values())):.4f}")

    t_loop = median_ms(loop, args.repeats)
    t_eager = median_ms(lambda: per_example(params, x_t, y_t), args.repeats)
    t_fast = median_ms(lambda: fast(params, x_t, y_t), args.repeats)
    print(f"python loop {t_loop:.2f} ms | vmap eager {t_eager:.2f} ms "
          f"({t_loop / t_eager:.1f}x) | vmap compiled {t_fast:.2f} ms "
          f"({t_loop / t_fast:.1f}x faster than the loop)")


if __name__ == "__main__":
    main()
