"""Eager overhead: each common op vs the bare numpy call, and one eager MLP training step vs the
same step in plain numpy. Prints medians (microseconds) and ratios measured side by side.

Run with one BLAS thread and OpenBLAS's tuning variables unset:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benchmarks/eager_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import aprender as ap
from aprender.autograd import Tensor, no_grad


def median_us(fn: Callable[[], object], repeat: int, number: int) -> float:
    """Median over ``repeat`` runs of the mean time of ``number`` calls, in microseconds."""
    return interleaved_us([fn], repeat, number)[0]


def interleaved_us(fns: list[Callable[[], object]], repeat: int, number: int) -> list[float]:
    """Like ``median_us`` for several functions, timed in alternating rounds so that machine
    noise falls on each alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, bucket in zip(fns, times, strict=True):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            bucket.append((time.perf_counter() - start) / number * 1e6)
    return [statistics.median(t) for t in times]


def op_table(repeat: int, number: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 16)).astype(np.float32)
    b = rng.standard_normal((32, 16)).astype(np.float32)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    ta, tb, tw = (Tensor(v).requires_grad() for v in (a, b, w))
    cases = [
        ("add", lambda: ta + tb, lambda: np.add(a, b)),
        ("mul", lambda: ta * tb, lambda: np.multiply(a, b)),
        ("mul scalar", lambda: ta * 0.5, lambda: np.multiply(a, 0.5)),
        ("exp", lambda: ta.exp(), lambda: np.exp(a)),
        ("relu", lambda: ta.relu(), lambda: np.maximum(a, 0)),
        ("tanh", lambda: ta.tanh(), lambda: np.tanh(a)),
        ("sum", lambda: ta.sum(), lambda: np.add.reduce(a, axis=None)),
        ("sum_axis(0)", lambda: ta.sum_axis(0), lambda: np.add.reduce(a, axis=0)),
        ("matmul", lambda: ta @ tw, lambda: np.matmul(a, w)),
        ("transpose", lambda: ta.T, lambda: a.T),
        ("reshape", lambda: ta.reshape(16, 32), lambda: a.reshape(16, 32)),
        ("getitem slice", lambda: ta[:, 1:3], lambda: a[:, 1:3]),
    ]
    rows = []
    for name, eager, bare in cases:
        t_bare, t_eager = interleaved_us([bare, eager], repeat, number)
        rows.append((name, t_bare, t_eager))
    ap.clear_graph()
    return rows


def make_mlp(sizes: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        scale = np.sqrt(2.0 / (fan_in + fan_out))
        params.append((rng.random((fan_in, fan_out)) * scale - scale / 2).astype(np.float32))
        params.append(np.zeros(fan_out, dtype=np.float32))
    return params


def numpy_step(params: list[np.ndarray], x: np.ndarray, labels: np.ndarray, lr: float) -> float:
    """One SGD step of a ReLU MLP with softmax cross-entropy, in plain numpy."""
    n = x.shape[0]
    acts, h = [x], x
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = np.maximum(h, 0)
        acts.append(h)
    shifted = h - h.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = float(-(shifted[np.arange(n), labels] - np.log(s[:, 0])).mean())
    g = e / s
    g[np.arange(n), labels] -= 1
    g /= n
    for i in range(len(params) - 2, -1, -2):
        gw = acts[i // 2].T @ g
        gb = g.sum(axis=0)
        if i:
            g = (g @ params[i].T) * (acts[i // 2] > 0)
        params[i] -= lr * gw
        params[i + 1] -= lr * gb
    return loss


def eager_step(params: list[Tensor], x: Tensor, labels: np.ndarray, rows: np.ndarray,
               lr: float) -> float:
    """The same step with aprender eager tensors."""
    h = x
    for i in range(0, len(params), 2):
        h = (h @ params[i]).add(params[i + 1])
        if i + 2 < len(params):
            h = h.relu()
    loss = -h.log_softmax()[rows, labels].mean()
    loss.backward()
    with no_grad():
        for p in params:
            p.sub_(p.grad() * lr)
            ap.clear_grad(p.id())
    return loss.item()


def step_table(repeat: int, number: int) -> tuple[float, float, float, float]:
    sizes, batch, lr = [64, 128, 128, 10], 32, 0.01
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    labels = rng.integers(0, sizes[-1], batch)
    ref = make_mlp(sizes)
    tensors = [Tensor(p).requires_grad() for p in make_mlp(sizes)]
    rows, tx = np.arange(batch), Tensor(x)
    loss_np = numpy_step([p.copy() for p in ref], x, labels, lr)
    loss_eager = eager_step([Tensor(p).requires_grad() for p in ref], tx, labels, rows, lr)
    assert abs(loss_np - loss_eager) < 1e-5 * max(1.0, abs(loss_np)), (loss_np, loss_eager)
    t_np, t_eager = interleaved_us([lambda: numpy_step(ref, x, labels, lr),
                                    lambda: eager_step(tensors, tx, labels, rows, lr)],
                                   repeat, number)
    return t_np, t_eager, loss_np, loss_eager


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    print(f"numpy {np.__version__}; median of {args.repeat} runs x {args.number} calls")
    print(f"\n{'op (f32[32,16])':<16}{'numpy us':>10}{'eager us':>10}{'overhead us':>13}")
    for name, bare, eager in op_table(args.repeat, args.number):
        print(f"{name:<16}{bare:>10.2f}{eager:>10.2f}{eager - bare:>13.2f}")
    t_np, t_eager, loss_np, loss_eager = step_table(args.repeat, max(args.number // 10, 50))
    print("\nMLP step (batch 32, 64-128-128-10, f32, cross-entropy, SGD)")
    print(f"{'system':<16}{'us/step':>10}{'ratio':>8}   first-step loss")
    print(f"{'numpy':<16}{t_np:>10.1f}{1.0:>8.2f}   {loss_np:.6f}")
    print(f"{'aprender eager':<16}{t_eager:>10.1f}{t_eager / t_np:>8.2f}   {loss_eager:.6f}")


if __name__ == "__main__":
    main()
