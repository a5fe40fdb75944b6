"""One training step (forward, cross-entropy, backward, SGD) of a ReLU MLP, float32:
aprender eager and compiled vs
a careful hand-written numpy step (with and without in-place scipy BLAS updates), a simpler
numpy step, and PyTorch eager / JAX jit when installed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benchmarks/train_step.py [--sizes tiny,medium,large] [--scaling]

Checks every system starts from the same weights and data and agrees on the loss, then prints
median microseconds per step, ratios to the numpy reference, compile time and peak memory.
PyTorch and JAX are timed too when installed (optional). Systems are timed in interleaved
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


class CarefulStep:
    """The careful hand-written reference (issue 12): preallocated buffers and ``out=``
    everywhere; the loss gradient scaled by lr/B once, so every parameter gradient already
    includes the learning rate and each update is one in-place subtract; ReLU written in place
    over its pre-activation with its mask taken from the kept output; ``ufunc.reduce``; bias
    gradients as a gemv with a ones vector; the softmax computed in place over the shifted
    logits. Hidden activations and all gradients are stored transposed (features x batch, C
    buffers), so every product is ``A@B``, ``A.T@B`` or ``A@B.T`` with one F operand (never the
    slow ``A @ B.T`` on two C arrays) and every element-wise op runs on C arrays. With ``blas``
    (scipy.linalg.blas) each update is one in-place ``sgemm``/``sgemv`` (alpha=-1 on the
    lr-scaled gradient, beta=1, overwrite) and no dW/db is materialised."""

    def __init__(self, params: list[np.ndarray], batch: int, blas: object = None) -> None:
        f32 = np.float32
        self.params = params
        ws, bs = params[0::2], params[1::2]
        self.n_layers = len(ws)
        self.batch = batch
        self.blas = blas
        self.hT = [np.empty((w.shape[1], batch), f32) for w in ws[:-1]]
        self.bcol = [b[:, None] for b in bs]
        self.z = np.empty((batch, ws[-1].shape[1]), f32)
        self.gT = [np.empty((w.shape[1], batch), f32) for w in ws]
        self.g = [t.T for t in self.gT]
        self.dW = [np.empty_like(w) for w in ws]
        self.db = [np.empty_like(b) for b in bs]
        self.maskT = [np.empty((w.shape[1], batch), bool) for w in ws[:-1]]
        self.ones = np.ones(batch, f32)
        self.rowmax = np.empty(batch, f32)
        self.rowsum = np.empty(batch, f32)
        self.rowmax_col = self.rowmax[:, None]
        self.rowsum_col = self.rowsum[:, None]
        self.onehot = np.zeros((batch, ws[-1].shape[1]), f32)   # lr/B at the labels
        self.onehot_flat = self.onehot.reshape(-1)
        self.rows = np.arange(batch)
        self.scale = np.float32(LR / batch)
        self.ws, self.bs = ws, bs
        self.wT = [w.T for w in ws]
        # the previous activation of each layer as an F-ordered (batch x in) operand
        self.prevF = [None] + [t.T for t in self.hT]

    def __call__(self, x: np.ndarray, labels: np.ndarray) -> float:
        dot, add, sub, mul = np.dot, np.add, np.subtract, np.multiply
        ws, bs, hT, g, gT, wT = self.ws, self.bs, self.hT, self.g, self.gT, self.wT
        last = self.n_layers - 1
        aT = x.T
        for i in range(last):
            hi = hT[i]
            dot(wT[i], aT, out=hi)                              # (a @ W).T = W.T @ a.T
            add(hi, self.bcol[i], out=hi)
            np.maximum(hi, 0, out=hi)
            aT = hi
        z = self.z
        dot(aT.T, ws[last], out=z)
        add(z, bs[last], out=z)
        # softmax cross-entropy over shifted logits; one-hot scaled by lr/B built per batch
        np.maximum.reduce(z, 1, out=self.rowmax)
        sub(z, self.rowmax_col, out=z)
        onehot, scale = self.onehot, self.scale
        onehot.fill(0)
        onehot[self.rows, labels] = scale
        picked = dot(z.reshape(-1), self.onehot_flat)          # = lr/B * sum of true logits
        e = g[last]                                            # written through a .T view
        np.exp(z, out=e)
        rowsum = self.rowsum
        add.reduce(e, 1, out=rowsum)
        loss = add.reduce(np.log(rowsum)) / self.batch - picked / LR
        np.divide(scale, rowsum, out=rowsum)                   # lr/B folded into the vector
        mul(e, self.rowsum_col, out=e)
        sub(e, onehot, out=e)                                  # g = lr/B * dL/dz
        blas = self.blas
        for i in range(last, -1, -1):
            if i:
                dot(ws[i], gT[i], out=gT[i - 1])               # (g @ W.T).T = W @ g.T
                mask = self.maskT[i - 1]
                np.greater(hT[i - 1], 0, out=mask)
                mul(gT[i - 1], mask, out=gT[i - 1])
            if blas is None:
                dW, db = self.dW[i], self.db[i]
                dot(x.T if i == 0 else hT[i - 1], g[i], out=dW)
                dot(gT[i], self.ones, out=db)                  # bias grad as gemv
                sub(ws[i], dW, out=ws[i])
                sub(bs[i], db, out=bs[i])
            elif i:
                blas.sgemm(-1.0, g[i], self.prevF[i], 1.0, wT[i], 1, 0, 1)
                blas.sgemv(-1.0, g[i], self.ones, 1.0, bs[i], 0, 1, 0, 1, 1, 1)
            else:
                blas.sgemm(-1.0, g[i], x.T, 1.0, wT[i], 1, 1, 1)
                blas.sgemv(-1.0, g[i], self.ones, 1.0, bs[i], 0, 1, 0, 1, 1, 1)
        return float(loss)


class NumpyStep:
    """The simpler hand-written step (the reference before issue 12): preallocated buffers,
    out=, in-place updates, a one-hot built once per batch, products laid out as A@B or A.T@B
    (never A @ B.T on C arrays)."""

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
    ref = CarefulStep(init_params(sizes), batch)
    simple = NumpyStep(init_params(sizes), batch)
    blas = scipy_blas()
    ref_blas = CarefulStep(init_params(sizes), batch, blas) if blas is not None else None
    m_eager, o_eager = make_model(sizes)
    m_comp, o_comp = make_model(sizes)
    eager = aprender_step(m_eager, o_eager)
    t0 = time.perf_counter()
    compiled = ap.compile(aprender_step(m_comp, o_comp))
    first = compiled(x, labels)
    compile_ms = (time.perf_counter() - t0) * 1e3
    losses = {"numpy": ref(x, labels), "simple": simple(x, labels),
              "eager": eager(x, labels).item(), "compiled": first.item()}
    if ref_blas is not None:
        losses["scipy"] = ref_blas(x, labels)
    assert max(losses.values()) - min(losses.values()) < 1e-4 * abs(losses["numpy"]), losses
    systems = [("careful numpy", lambda: ref(x, labels), None)]
    if ref_blas is not None:
        systems.append(("careful numpy+scipy", lambda: ref_blas(x, labels), None))
    systems += [("simple numpy", lambda: simple(x, labels), None),
               ("aprender eager", lambda: eager(x, labels), None),
               ("aprender compiled", lambda: compiled(x, labels), compile_ms)]
    systems += torch_systems(sizes, x, labels) + jax_systems(sizes, x, labels)
    medians = median_us([fn for _, fn, _ in systems], seconds)
    untraced = ("pytorch", "jax")
    return [(name, system, us, None if system.startswith(untraced) else peak_kib(fn), ms)
            for (system, fn, ms), us in zip(systems, medians, strict=True)]


def scipy_blas() -> object:
    try:
        from scipy.linalg import blas
    except ImportError:
        return None
    return blas


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


def jax_systems(sizes: list[int], x: np.ndarray, labels: np.ndarray) -> list[tuple]:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return []
    params = [jnp.asarray(p) for p in init_params(sizes)]
    jx, jy = jnp.asarray(x), jnp.asarray(labels)

    def loss_fn(ps: list, a: object, y: object) -> object:
        for i in range(0, len(ps), 2):
            a = a @ ps[i] + ps[i + 1]
            if i + 2 < len(ps):
                a = jax.nn.relu(a)
        logp = jax.nn.log_softmax(a)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))

    @jax.jit
    def update(ps: list, a: object, y: object) -> tuple:
        loss, grads = jax.value_and_grad(loss_fn)(ps, a, y)
        return [p - LR * g for p, g in zip(ps, grads, strict=True)], loss

    t0 = time.perf_counter()
    jax.block_until_ready(update(params, jx, jy))
    ms = (time.perf_counter() - t0) * 1e3
    state = {"ps": params}

    def step() -> object:
        state["ps"], loss = update(state["ps"], jx, jy)
        return loss.block_until_ready()

    return [("jax jit", step, ms)]


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
