"""One training step (forward, cross-entropy, backward, SGD) of a ReLU MLP, float32:
aprender eager vs aprender compiled vs a careful hand-written numpy step, side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benchmarks/train_step.py [--sizes tiny,medium,large] [--scaling]

Checks every system starts from the same weights and data and agrees on the loss, then prints
median microseconds per step, ratios to the numpy reference, compile time and peak memory.
PyTorch is timed too when it is installed (optional). Systems are timed in interleaved
rounds, so the ratios compare like with like on a noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from eager_overhead import make_mlp as init_params  # same weights in both benchmarks

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor

SIZES = {"tiny": (32, [64, 128, 128, 10]), "medium": (256, [784, 512, 512, 10]),
         "large": (1024, [1024, 2048, 2048, 10])}
LR = 0.01


class NumpyStep:
    """The hand-written reference: preallocated buffers, out=, in-place updates, a one-hot
    built once per batch, products laid out as A@B or A.T@B (never A @ B.T on C arrays)."""

    def __init__(self, params: list[np.ndarray], batch: int) -> None:
        self.params = params
        n_layers = len(params) // 2
        self.ws, self.bs = params[0::2], params[1::2]
        f32 = np.float32
        self.h = [np.empty((batch, w.shape[1]), f32) for w in self.ws]
        self.gT = [np.empty((w.shape[1], batch), f32) for w in self.ws]  # grads, transposed
        self.dW = [np.empty_like(w) for w in self.ws]
        self.db = [np.empty_like(b) for b in self.bs]
        self.mask = [np.empty((batch, w.shape[1]), bool) for w in self.ws[:-1]]
        self.rowmax = np.empty((batch, 1), f32)
        self.rowsum = np.empty((batch, 1), f32)
        self.onehot = np.zeros((batch, self.ws[-1].shape[1]), f32)
        self.n_layers = n_layers

    def __call__(self, x: np.ndarray, labels: np.ndarray) -> float:
        ws, bs, h = self.ws, self.bs, self.h
        n = x.shape[0]
        a = x
        for i in range(self.n_layers):
            np.dot(a, ws[i], out=h[i])
            np.add(h[i], bs[i], out=h[i])
            if i < self.n_layers - 1:
                np.maximum(h[i], 0, out=h[i])
            a = h[i]
        z = h[-1]
        np.maximum.reduce(z, axis=1, keepdims=True, out=self.rowmax)
        np.subtract(z, self.rowmax, out=z)
        np.exp(z, out=self.gT[-1].T)
        e = self.gT[-1].T
        np.add.reduce(e, axis=1, keepdims=True, out=self.rowsum)
        self.onehot.fill(0)
        self.onehot[np.arange(n), labels] = 1
        loss = float(np.log(self.rowsum).mean() - (z * self.onehot).sum() / n)
        np.divide(e, self.rowsum * n, out=e)
        np.subtract(e, self.onehot / n, out=e)
        for i in range(self.n_layers - 1, -1, -1):
            g = self.gT[i].T                       # F-ordered view of a C buffer
            prev = x if i == 0 else h[i - 1]
            np.dot(prev.T, g, out=self.dW[i])      # A.T @ B
            np.add.reduce(g, axis=0, out=self.db[i])
            if i:
                np.dot(ws[i], self.gT[i], out=self.gT[i - 1])  # (g @ W.T).T = W @ g.T
                np.greater(h[i - 1], 0, out=self.mask[i - 1])
                np.multiply(self.gT[i - 1].T, self.mask[i - 1], out=self.gT[i - 1].T)
            self.dW[i] *= LR
            self.db[i] *= LR
            ws[i] -= self.dW[i]
            bs[i] -= self.db[i]
        return loss


def aprender_step(model: nn.MLP, opt: ap.optim.SGD) -> Callable:
    def step(x: np.ndarray, labels: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), labels)
        loss.backward()
        opt.step()
        return loss

    return step


def make_model(sizes: list[int]) -> tuple[nn.MLP, ap.optim.SGD]:
    model = nn.MLP(sizes[0], sizes[1], sizes[-1], rng=0)
    for p, v in zip(model.parameters(), init_params(sizes), strict=True):
        with ap.no_grad():
            p.assign(v)
    return model, ap.optim.SGD(model.parameters(), lr=LR)


def median_us(fns: list[Callable[[], object]], seconds: float = 1.0) -> list[float]:
    """Median microseconds per call of each function, timed in interleaved rounds so that
    machine noise falls on every system alike."""
    numbers = []
    for fn in fns:
        fn()
        start = time.perf_counter()
        fn()
        numbers.append(max(1, int(0.02 / max(time.perf_counter() - start, 1e-6))))
    times: list[list[float]] = [[] for _ in fns]
    deadline = time.perf_counter() + seconds * len(fns)
    while time.perf_counter() < deadline or len(times[0]) < 7:
        for fn, number, bucket in zip(fns, numbers, times, strict=True):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            bucket.append((time.perf_counter() - t0) / number * 1e6)
    return [statistics.median(t) for t in times]


def peak_kib(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024


def run_size(name: str, seconds: float) -> list[tuple]:
    batch, sizes = SIZES[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    labels = rng.integers(0, sizes[-1], batch)
    if len(sizes) != 4:
        raise ValueError("the benchmark MLP has two hidden layers")
    ref = NumpyStep(init_params(sizes), batch)
    m_eager, o_eager = make_model(sizes)
    m_comp, o_comp = make_model(sizes)
    eager = aprender_step(m_eager, o_eager)
    t0 = time.perf_counter()
    compiled = ap.compile(aprender_step(m_comp, o_comp))
    first = compiled(x, labels)
    compile_ms = (time.perf_counter() - t0) * 1e3
    losses = {"numpy": ref(x, labels), "eager": eager(x, labels).item(), "compiled": first.item()}
    assert max(losses.values()) - min(losses.values()) < 1e-4 * abs(losses["numpy"]), losses
    systems = [("numpy (hand-written)", lambda: ref(x, labels), None),
               ("aprender eager", lambda: eager(x, labels), None),
               ("aprender compiled", lambda: compiled(x, labels), compile_ms)]
    systems += torch_systems(sizes, x, labels)
    medians = median_us([fn for _, fn, _ in systems], seconds)
    return [(name, system, us, peak_kib(fn) if not system.startswith("pytorch") else None, ms)
            for (system, fn, ms), us in zip(systems, medians, strict=True)]


def torch_systems(sizes: list[int], x: np.ndarray, labels: np.ndarray) -> list[tuple]:
    try:
        import torch
    except ImportError:
        return []
    torch.set_num_threads(1)
    params = [torch.tensor(p, requires_grad=True) for p in init_params(sizes)]
    tx, ty = torch.tensor(x), torch.tensor(labels)
    opt = torch.optim.SGD(params, lr=LR)

    def step() -> float:
        opt.zero_grad()
        h = tx
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i + 2 < len(params):
                h = h.relu()
        loss = torch.nn.functional.cross_entropy(h, ty)
        loss.backward()
        opt.step()
        return loss

    return [("pytorch eager", step, None)]


def scaling(seconds: float) -> None:
    sizes = SIZES["tiny"][1]
    print("\nstep time vs batch size (64-128-128-10): us/step")
    print(f"{'batch':>6}{'eager':>10}{'compiled':>10}{'speed-up':>10}")
    for batch in (32, 128, 512, 1024, 4096):
        rng = np.random.default_rng(1)
        x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        labels = rng.integers(0, sizes[-1], batch)
        eager = aprender_step(*make_model(sizes))
        compiled = ap.compile(aprender_step(*make_model(sizes)))
        te, tc = median_us([lambda e=eager, a=x, y=labels: e(a, y),
                            lambda c=compiled, a=x, y=labels: c(a, y)], seconds / 2)
        print(f"{batch:>6}{te:>10.1f}{tc:>10.1f}{te / tc:>9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,medium,large")
    parser.add_argument("--seconds", type=float, default=1.5, help="timing budget per system")
    parser.add_argument("--scaling", action="store_true", help="also time batch 32..4096")
    args = parser.parse_args()
    print(f"numpy {np.__version__}; medians of repeated runs in one process")
    print(f"\n{'size':<8}{'system':<22}{'us/step':>11}{'ratio':>8}{'peak KiB':>10}"
          f"{'compile ms':>12}")
    for name in args.sizes.split(","):
        rows = run_size(name, args.seconds)
        base = rows[0][2]
        for size, system, us, peak, compile_ms in rows:
            peak_text = f"{peak:>10.0f}" if peak is not None else f"{'-':>10}"
            comp_text = f"{compile_ms:>12.1f}" if compile_ms is not None else f"{'-':>12}"
            print(f"{size:<8}{system:<22}{us:>11.1f}{us / base:>8.2f}{peak_text}{comp_text}")
    if args.scaling:
        scaling(args.seconds)


if __name__ == "__main__":
    main()
