"""One training step of a small CNN (forward, cross-entropy, backward, SGD), float32:
aprender eager vs aprender compiled vs PyTorch eager, side by side in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benchmarks/conv_step.py [--sizes mnist,cifar] [--seconds 1.5]

The network: Conv2d(C, 16, 3, padding=1) - ReLU - MaxPool2d(2) - Conv2d(16, 32, 3, padding=1) -
ReLU - MaxPool2d(2) - Flatten - Linear(32 * H/4 * W/4, 10), on a batch of 32 images (``mnist``:
1x28x28, ``cifar``: 3x32x32). Every system starts from the same weights and data and must agree
on the loss; the table gives the median microseconds per step, wall-clock and CPU time of
this process (the CPU time is the steadier number on a machine shared with other work), and the
ratios to PyTorch (one thread: ``torch.set_num_threads(1)``). PyTorch is optional: without it
its columns are skipped. Systems are timed in interleaved rounds, so the ratios compare like
with like on a noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor

SIZES = {"mnist": (32, 1, 28), "cifar": (32, 3, 32)}
LR = 0.01


def make_model(channels: int, side: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, rng=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * (side // 4) ** 2, 10, rng=2))


def aprender_step(model: nn.Module, opt: ap.optim.SGD) -> Callable:
    def step(x: np.ndarray, labels: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), labels)
        loss.backward()
        opt.step()
        return loss

    return step


def torch_step(model: nn.Module, x: np.ndarray, labels: np.ndarray) -> Callable | None:
    """The same network and weights in PyTorch (aprender's Linear weight is ``[in, out]``,
    PyTorch's ``[out, in]``); None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    side = x.shape[-1]
    net = torch.nn.Sequential(
        torch.nn.Conv2d(x.shape[1], 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * (side // 4) ** 2, 10))
    state = model.state_dict()  # the same names as PyTorch's: 0.weight, ..., 7.bias
    state["7.weight"] = state["7.weight"].T
    net.load_state_dict({k: torch.tensor(np.ascontiguousarray(v)) for k, v in state.items()})
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    tx, ty = torch.tensor(x), torch.tensor(labels)

    def step() -> float:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tx), ty)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def median_us(fns: list[Callable[[], object]], seconds: float) -> list[tuple[float, float]]:
    """Median wall-clock and CPU microseconds per call of each function, timed in interleaved
    rounds (as in train_step.py) so that machine noise falls on every system alike."""
    numbers = []
    for fn in fns:
        fn()
        start = time.perf_counter()
        fn()
        numbers.append(max(1, int(0.02 / max(time.perf_counter() - start, 1e-6))))
    walls: list[list[float]] = [[] for _ in fns]
    cpus: list[list[float]] = [[] for _ in fns]
    deadline = time.perf_counter() + seconds * len(fns)
    while time.perf_counter() < deadline or len(walls[0]) < 7:
        for fn, number, wall, cpu in zip(fns, numbers, walls, cpus, strict=True):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(number):
                fn()
            wall.append((time.perf_counter() - t0) / number * 1e6)
            cpu.append((time.process_time() - c0) / number * 1e6)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus,
                                                                        strict=True)]


def run_size(name: str, seconds: float) -> list[tuple]:
    batch, channels, side = SIZES[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, channels, side, side)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    m_eager, m_comp = make_model(channels, side), make_model(channels, side)
    eager = aprender_step(m_eager, ap.optim.SGD(m_eager.parameters(), lr=LR))
    t0 = time.perf_counter()
    compiled = ap.compile(aprender_step(m_comp, ap.optim.SGD(m_comp.parameters(), lr=LR)))
    first = compiled(x, labels)
    compile_ms = (time.perf_counter() - t0) * 1e3
    reference = torch_step(make_model(channels, side), x, labels)
    losses = {"eager": eager(x, labels).item(), "compiled": first.item()}
    if reference is not None:
        losses["pytorch"] = float(reference())
    spread = max(losses.values()) - min(losses.values())
    assert spread < 1e-4 * abs(losses["eager"]), losses
    systems = [("aprender eager", lambda: eager(x, labels), None),
               ("aprender compiled", lambda: compiled(x, labels), compile_ms)]
    if reference is not None:
        systems.append(("pytorch eager", reference, None))
    medians = median_us([fn for _, fn, _ in systems], seconds)
    return [(name, system, wall, cpu, ms)
            for (system, _, ms), (wall, cpu) in zip(systems, medians, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="mnist,cifar")
    parser.add_argument("--seconds", type=float, default=1.5, help="timing budget per system")
    args = parser.parse_args()
    print(f"numpy {np.__version__}; batch 32; medians of repeated runs in one process")
    print(f"\n{'size':<7}{'system':<19}{'wall us':>9}{'cpu us':>9}{'wall/torch':>11}"
          f"{'cpu/torch':>10}{'cpu/eager':>10}{'compile ms':>11}")
    missing = False
    for name in args.sizes.split(","):
        rows = run_size(name, args.seconds)
        eager_cpu = rows[0][3]
        ref = next((r for r in rows if r[1].startswith("pytorch")), None)
        missing = ref is None
        for size, system, wall, cpu, compile_ms in rows:
            vs = (f"{wall / ref[2]:>11.2f}{cpu / ref[3]:>10.2f}" if ref
                  else f"{'-':>11}{'-':>10}")
            comp = f"{compile_ms:>11.1f}" if compile_ms is not None else f"{'-':>11}"
            print(f"{size:<7}{system:<19}{wall:>9.0f}{cpu:>9.0f}{vs}{cpu / eager_cpu:>10.2f}"
                  f"{comp}")
    if missing:
        print("\n(PyTorch is not installed: its columns are skipped.)")


if __name__ == "__main__":
    main()
