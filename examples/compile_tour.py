"""A tour of ap.compile: compile a whole training step, look at the IR after each pass and at
the generated source, see a cache miss explained, and time eager against compiled.

    python examples/compile_tour.py
"""

from __future__ import annotations

import time

import numpy as np

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor


def main() -> None:
    rng = np.random.default_rng(0)
    model = nn.MLP(8, 32, 3, rng=0)
    opt = ap.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def train_step(x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss

    fast = ap.compile(train_step)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    print(f"first call (trace + passes + codegen + run): loss {fast(x, y).item():.4f}")
    print(f"compile time: {fast.stats()['compile_ms']:.1f} ms; per pass (ms): "
          + ", ".join(f"{k} {v:.2f}" for k, v in fast.stats()["pass_ms"].items()))

    # The traced step: forward [fwd], the symbolic backward [bwd], the optimizer [update].
    print("\n" + fast.ir("input").split("\n", 1)[1][:1800] + "\n  ...")
    # After fusion, element-wise runs are single nodes with their bodies shown under them.
    fused = fast.ir("fuse")
    print("\n" + "\n".join(line for line in fused.splitlines() if "fused" in line or "|" in line))
    print("\n# generated source (first lines of the per-call function)")
    body = fast.source().split("    def fn_", 1)[1].splitlines()
    print("    def fn_" + "\n".join(body[:14]) + "\n        ...")

    for _ in range(50):
        loss = fast(x, y)
    print(f"\nafter 50 more compiled steps: loss {loss.item():.4f}")
    opt.lr = 0.01  # the learning rate is a graph input: no recompile
    fast(x, y)
    fast(x[:8], y[:8])  # a new batch size is a new cache key: one more compile
    info = fast.cache_info()
    print(f"cache: {info['hits']} hits, {info['misses']} misses, {info['compiles']} compiles")
    print(f"why the last miss happened: {info['miss_reasons'][-1]}")

    eager_model = nn.MLP(8, 32, 3, rng=0)
    eager_opt = ap.optim.SGD(eager_model.parameters(), lr=0.1, momentum=0.9)

    def eager_step() -> None:
        eager_opt.zero_grad()
        nn.cross_entropy(eager_model(Tensor(x)), y).backward()
        eager_opt.step()

    for name, run in (("eager", eager_step), ("compiled", lambda: fast(x, y))):
        run()
        start = time.perf_counter()
        for _ in range(300):
            run()
        print(f"{name:>8}: {(time.perf_counter() - start) / 300 * 1e6:7.1f} us/step")


if __name__ == "__main__":
    main()
