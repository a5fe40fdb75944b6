"""Two real models side by side: aprender (eager and ``ap.compile``) against PyTorch (eager
and ``torch.compile``), from the same weights on the same batches, float32.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benchmarks/models.py [--model cnn|transformer|all] [--quick] [--profile]

The models:

- ``cnn`` (the network of ``examples/train_cnn_digits.py``, with conv biases): Conv2d(1, 16, 3,
  padding=1) - BatchNorm2d - ReLU - MaxPool2d(2) - Conv2d(16, 32, 3, padding=1) - BatchNorm2d -
  ReLU - MaxPool2d(2) - Flatten - Linear(128, 10) on random 8x8 images, batch 64
  (``--cnn-batch``), AdamW (lr 1e-3), cross-entropy.
- ``transformer`` (the default sizes of ``examples/char_transformer.py``, without dropout): a
  GPT-style character model on CPython's own documentation text
  (``pydoc_data.topics``, characters, 90/10 split by position): token and position embeddings,
  3 pre-norm ``TransformerEncoderLayer(128, 4, 512, dropout=0.0, activation="gelu",
  norm_first=True)`` blocks with a causal mask, a final LayerNorm and a Linear head; batch 32,
  context 64, cross-entropy over every position, gradient clipping at 1.0, AdamW (lr 3e-3,
  betas (0.9, 0.95), weight decay 0.1).

For each model the script checks that the first losses agree (1e-4 relative), times training
steps in interleaved rounds in this process (one BLAS thread; ``torch.set_num_threads(1)``) and
prints median microseconds per step (wall and CPU time of this process; on a machine shared
with other work the CPU time is the steadier number), the ratios to PyTorch eager, the peak
memory of one step and the compile time (first call minus a normal step). Then batched
inference in ``eval()`` mode without gradients: ``ap.compile(model)`` against the eager model
and PyTorch eager. For the transformer, aprender compiled and PyTorch eager then train
``--steps`` steps from the same weights on the same batches of real text and both validation
losses are printed. ``--profile`` says where the compiled training steps' time goes: every
generated line timed (totals by IR op, the costliest lines with their shapes) and cProfile's
functions by own time.

Peak memory is what one step allocates above what was live before it (parameters, optimizer
state and held gradients are not counted): for aprender, tracemalloc's peak (numpy registers
its buffers with it; the call runs in a fresh thread, where a compiled step allocates its
planned buffers, so those count too); for PyTorch, the running sum of the CPU allocations and
frees that its profiler records (``profile_memory=True``), at its highest. PyTorch is optional:
without it its rows are skipped; a ``torch.compile`` that fails here prints its reason instead.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import linecache
import logging
import math
import os
import pstats
import re
import statistics
import sys
import threading
import time
import tracemalloc
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pydoc_data.topics import topics
from types import FrameType
from typing import Any

import numpy as np

import aprender as ap
import aprender.nn.functional as F
from aprender import nn
from aprender.autograd import Tensor

os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # PyTorch's profiler: no start/stop lines
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")  # compile times from scratch
try:
    import torch
except ImportError:
    torch = None

CONTEXT, GPT_BATCH = 64, 32
D_MODEL, HEADS, LAYERS = 128, 4, 3
CNN_LR = 1e-3
GPT_LR, GPT_BETAS, GPT_DECAY, GPT_CLIP, GPT_WARMUP = 3e-3, (0.9, 0.95), 0.1, 1.0, 30
TORCH_LINEAR = {"cnn": ("9.weight",),
                "transformer": ("out_proj.weight", "linear1.weight", "linear2.weight",
                                "head.weight")}


# --- the models -----------------------------------------------------------------------------------
def cnn_aprender(seed: int) -> nn.Module:
    gen = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=gen), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, rng=gen), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 2 * 2, 10, rng=gen))


def cnn_torch() -> Any:
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(16, 32, 3, padding=1), tnn.BatchNorm2d(32), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(32 * 2 * 2, 10))


class CharGPT(nn.Module):
    """Token and position embeddings (N(0, 0.02) as the example's), pre-norm causal blocks,
    LayerNorm, Linear head: logits ``[N, T, vocab]`` of the characters ``idx [N, T]``."""

    def __init__(self, vocab: int, seed: int) -> None:
        gen = np.random.default_rng(seed)
        self.tok = nn.Embedding(vocab, D_MODEL, rng=gen)
        self.pos = nn.Embedding(CONTEXT, D_MODEL, rng=gen)
        for table in (self.tok, self.pos):
            table.weight = Tensor(0.02 * table.weight.data()).requires_grad()
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(D_MODEL, HEADS, 4 * D_MODEL, 0.0, activation="gelu",
                                       batch_first=True, norm_first=True, rng=gen)
            for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, vocab, rng=gen)

    def forward(self, idx: np.ndarray) -> Tensor:
        t = idx.shape[1]
        mask = np.triu(np.ones((t, t), dtype=bool), 1)  # True: a later position, masked
        h = self.tok(idx).add(self.pos.weight[:t])
        for block in self.blocks:
            h = block(h, src_mask=mask, is_causal=True)
        return self.head(self.norm(h))


def gpt_torch(vocab: int) -> Any:
    tnn = torch.nn

    class TorchCharGPT(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = tnn.Embedding(vocab, D_MODEL)
            self.pos = tnn.Embedding(CONTEXT, D_MODEL)
            self.blocks = tnn.ModuleList([
                tnn.TransformerEncoderLayer(D_MODEL, HEADS, 4 * D_MODEL, 0.0, activation="gelu",
                                            batch_first=True, norm_first=True)
                for _ in range(LAYERS)])
            self.norm = tnn.LayerNorm(D_MODEL)
            self.head = tnn.Linear(D_MODEL, vocab)

        def forward(self, idx: Any) -> Any:
            t = idx.shape[1]
            mask = tnn.Transformer.generate_square_subsequent_mask(t)
            h = self.tok(idx) + self.pos.weight[:t]
            for block in self.blocks:
                h = block(h, src_mask=mask, is_causal=True)
            return self.head(self.norm(h))

    return TorchCharGPT()


def torch_copy(state: dict[str, np.ndarray], net: Any, linear: tuple[str, ...]) -> Any:
    """Load an aprender state dict into the PyTorch module ``net`` (the ``linear`` weights
    transposed: aprender's Linear weight is ``[in, out]``, PyTorch's ``[out, in]``)."""
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v.T if k.endswith(linear)
                                                                  else v))
                         for k, v in state.items()})
    return net


# --- data -----------------------------------------------------------------------------------------
def load_text() -> tuple[np.ndarray, np.ndarray, int]:
    """Character ids of the pydoc topics (joined in sorted key order, as the example), split
    90/10 by position; returns the training ids, the validation ids and the vocabulary size."""
    text = "".join(topics[k] for k in sorted(topics))
    vocab = sorted(set(text))
    lookup = {c: i for i, c in enumerate(vocab)}
    ids = np.array([lookup[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(ids))
    return ids[:split], ids[split:], len(vocab)


def windows(ids: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[N, T]`` and next-character targets of the windows starting at ``starts``."""
    chunk = ids[starts[:, None] + np.arange(CONTEXT + 1)]
    return chunk[:, :-1], chunk[:, 1:]


def text_batches(ids: np.ndarray, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [windows(ids, rng.integers(0, len(ids) - CONTEXT - 1, GPT_BATCH))
            for _ in range(count)]


def image_batches(size: int, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.random((size, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, size))
            for _ in range(count)]


# --- training steps -------------------------------------------------------------------------------
@dataclass
class Setup:
    """How to train one model in either framework."""

    name: str
    make: Callable[[], nn.Module]
    make_torch: Callable[[], Any]
    wrap: Callable[[np.ndarray], Any]   # aprender's model input from a numpy batch
    optimizer: dict[str, Any]
    clip: float | None


def aprender_step(setup: Setup, model: nn.Module) -> tuple[Callable, ap.optim.AdamW]:
    params = model.parameters()
    opt = ap.optim.AdamW(params, **setup.optimizer)

    def step(x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        logits = model(setup.wrap(x))
        loss = F.cross_entropy(logits.reshape((-1, logits.shape[-1])), y.reshape(-1))
        loss.backward()
        if setup.clip is not None:
            ap.optim.clip_grad_norm_(params, setup.clip)
        opt.step()
        return loss

    return step, opt


def torch_step(setup: Setup, net: Any) -> tuple[Callable, Any]:
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, **setup.optimizer)

    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 y.reshape(-1))
        loss.backward()
        if setup.clip is not None:
            torch.nn.utils.clip_grad_norm_(params, setup.clip)
        opt.step()
        return loss.detach()

    return step, opt


def cycling(step: Callable, batches: list[tuple[Any, Any]]) -> Callable[[], Any]:
    """A no-argument call that runs ``step`` on the next batch (round and round)."""
    it = itertools.cycle(batches)
    return lambda: step(*next(it))


def torch_batches(batches: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[Any, Any]]:
    return [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]


# --- measuring -----------------------------------------------------------------------------------
@dataclass
class System:
    """One way to run a model: ``call`` does one step (or one inference batch)."""

    name: str
    call: Callable[[], Any]
    framework: str                  # "aprender" or "torch"
    compiled: bool
    first_s: float = math.nan       # seconds of the first call (with any compilation)
    first: Any = None               # what the first call returned
    peak_bytes: int = 0
    us: float = math.nan
    cpu_us: float = math.nan

    def start(self) -> System:
        """Make the first call (which compiles a compiled system) and time it."""
        t0 = time.perf_counter()
        self.first = self.call()
        self.first_s = time.perf_counter() - t0
        return self

    def first_value(self) -> np.ndarray:
        out = self.first
        return out.data() if self.framework == "aprender" else out.detach().numpy()


def time_rounds(systems: list[System], seconds: float, min_rounds: int) -> None:
    """Median wall-clock and CPU microseconds per call of each system, timed in interleaved
    rounds (as the other benchmarks) so that machine noise falls on every system alike."""
    numbers = []
    for s in systems:
        s.call()
        start = time.perf_counter()
        s.call()
        numbers.append(max(1, int(0.02 / max(time.perf_counter() - start, 1e-6))))
    walls: list[list[float]] = [[] for _ in systems]
    cpus: list[list[float]] = [[] for _ in systems]
    deadline = time.perf_counter() + seconds * len(systems)
    while time.perf_counter() < deadline or len(walls[0]) < min_rounds:
        for s, number, wall, cpu in zip(systems, numbers, walls, cpus, strict=True):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(number):
                s.call()
            wall.append((time.perf_counter() - t0) / number * 1e6)
            cpu.append((time.process_time() - c0) / number * 1e6)
    for s, wall, cpu in zip(systems, walls, cpus, strict=True):
        s.us, s.cpu_us = statistics.median(wall), statistics.median(cpu)


def aprender_peak(call: Callable[[], Any]) -> int:
    """tracemalloc's peak during one call in a fresh thread, above what was live before."""
    result: list[int] = []

    def measure() -> None:
        tracemalloc.start()
        try:
            call()
            result.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()

    thread = threading.Thread(target=measure)
    thread.start()
    thread.join()
    return result[0]


def torch_peak(call: Callable[[], Any]) -> int:
    """The highest running sum of the CPU allocations and frees that PyTorch's profiler
    records during one call."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak


def measure(systems: list[System], seconds: float, min_rounds: int) -> None:
    """Peak memory of one call of each system, then the interleaved timing."""
    for s in systems:
        s.peak_bytes = aprender_peak(s.call) if s.framework == "aprender" else torch_peak(s.call)
    time_rounds(systems, seconds, min_rounds)


def print_table(title: str, unit: str, systems: list[System], notes: list[str]) -> None:
    ref = next((s for s in systems if s.name == "pytorch eager"), None)
    print(f"\n{title}")
    print(f"{'system':<20}{unit:>11}{'cpu us':>11}{'/ torch':>9}{'cpu/torch':>10}"
          f"{'peak MiB':>10}{'compile s':>11}")
    for s in systems:
        ratios = (f"{s.us / ref.us:>9.2f}{s.cpu_us / ref.cpu_us:>10.2f}" if ref
                  else f"{'-':>9}{'-':>10}")
        comp = f"{s.first_s - s.us * 1e-6:>11.2f}" if s.compiled else f"{'-':>11}"
        print(f"{s.name:<20}{s.us:>11.0f}{s.cpu_us:>11.0f}{ratios}{s.peak_bytes / 2**20:>10.2f}"
              f"{comp}")
    for line in notes:
        print(line)


# --- training table -------------------------------------------------------------------------------
def train_table(setup: Setup, batches: list, args: argparse.Namespace) -> None:
    """Train from the same weights on the same batches in every system: check the first
    losses, then measure and print the table."""
    models = {"eager": setup.make(), "compiled": setup.make()}
    start = models["eager"].state_dict()
    models["compiled"].load_state_dict(start)
    systems, notes = [], []
    for label, model in models.items():
        step, _ = aprender_step(setup, model)
        run = ap.compile(step) if label == "compiled" else step
        systems.append(System(f"aprender {label}", cycling(run, batches), "aprender",
                              label == "compiled").start())
    if torch is None:
        notes.append("(PyTorch is not installed: its rows are skipped.)")
    else:
        tb = torch_batches(batches)
        for label in ("eager", "compile"):
            if label == "compile" and args.no_torch_compile:
                notes.append("(torch.compile skipped: --no-torch-compile)")
                continue
            step, _ = torch_step(setup, torch_copy(start, setup.make_torch(),
                                                   TORCH_LINEAR[setup.name]))
            run = torch.compile(step) if label == "compile" else step
            try:
                systems.append(System(f"pytorch {label}", cycling(run, tb), "torch",
                                      label == "compile").start())
            except Exception as e:  # noqa: BLE001  (a compiler missing here is reported)
                reason = (str(e).strip().splitlines() or [""])[0][:160]
                notes.append(f"pytorch compile: failed here ({type(e).__name__}: {reason})")
    losses = {s.name: float(s.first_value()) for s in systems}
    ref = losses["aprender eager"]
    worst = max(abs(v - ref) / abs(ref) for v in losses.values())
    print(f"{setup.name}: first losses " + ", ".join(f"{k} {v:.7f}" for k, v in losses.items())
          + f"; largest relative difference {worst:.1e} (at most 1e-4: "
          + ("ok)" if worst <= 1e-4 else "MISMATCH)"))
    if worst > 1e-4:
        raise SystemExit(f"{setup.name}: the first losses differ")
    measure(systems, args.seconds, args.rounds)
    print_table(f"{setup.name}: one training step (medians of interleaved rounds)", "us/step",
                systems, notes)


# --- inference table ------------------------------------------------------------------------------
def inference_table(setup: Setup, x: np.ndarray, args: argparse.Namespace) -> None:
    """Batched eval-mode forward without gradients from the same weights: aprender eager and
    ``ap.compile(model)``, and PyTorch eager."""
    model = setup.make().eval()

    def aprender_call(forward: Callable) -> Callable[[], Tensor]:
        def call() -> Tensor:
            with ap.no_grad():
                return forward(setup.wrap(x))
        return call

    systems = [System("aprender eager", aprender_call(model), "aprender", False).start(),
               System("aprender compiled", aprender_call(ap.compile(model)), "aprender",
                      True).start()]
    if torch is not None:
        net = torch_copy(model.state_dict(), setup.make_torch(), TORCH_LINEAR[setup.name])
        net.eval()
        tx = torch.from_numpy(x)

        def torch_call() -> Any:
            with torch.no_grad():
                return net(tx)

        systems.append(System("pytorch eager", torch_call, "torch", False).start())
    ref = systems[0].first_value()
    worst = max(float(np.abs(s.first_value() - ref).max()) for s in systems)
    print(f"\n{setup.name} inference: batch {x.shape[0]}; outputs agree to {worst:.1e} "
          f"(largest |logit| {float(np.abs(ref).max()):.2f})")
    measure(systems, args.seconds / 2, args.rounds)
    print_table(f"{setup.name}: batched inference, eval() under no_grad", "us/batch", systems,
                [])


# --- transformer: validation loss after the same training -----------------------------------------
def val_loss(forward: Callable[[np.ndarray], np.ndarray], val_ids: np.ndarray) -> float:
    """Mean cross-entropy (nats/char) over every full non-overlapping validation window that
    fills a batch."""
    starts = np.arange(0, len(val_ids) - CONTEXT - 1, CONTEXT)
    starts = starts[:len(starts) // GPT_BATCH * GPT_BATCH]
    total = 0.0
    for chunk in starts.reshape(-1, GPT_BATCH):
        x, y = windows(val_ids, chunk)
        logits = forward(x).astype(np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        total += float(-np.take_along_axis(log_p, y[..., None], -1).mean())
    return total / (len(starts) // GPT_BATCH)


def warmup_lr(step: int) -> float:
    return GPT_LR * min(1.0, (step + 1) / GPT_WARMUP)


def train_steps(step: Callable[[int, Any, Any], float],
                batches: list) -> tuple[float, list[float]]:
    """``step(i, x, y)`` over the batches: the last loss and each step's CPU milliseconds."""
    last, ms = math.nan, []
    for i, (x, y) in enumerate(batches):
        t0 = time.process_time()
        last = step(i, x, y)
        ms.append((time.process_time() - t0) * 1e3)
    return last, ms


def cpu_note(ms: list[float]) -> str:
    k = min(50, len(ms))
    return (f"{sum(ms) / 1e3:.1f} CPU s; median CPU ms a step: first {k} "
            f"{statistics.median(ms[:k]):.1f}, last {k} {statistics.median(ms[-k:]):.1f}")


def converge(setup: Setup, train_ids: np.ndarray, val_ids: np.ndarray, steps: int) -> None:
    """Train aprender compiled and PyTorch eager ``steps`` steps from the same weights on the
    same batches (linear warmup, then a constant learning rate); print both validation
    losses."""
    batches = text_batches(train_ids, steps, seed=1)
    model = setup.make()
    start_state = model.state_dict()
    step, opt = aprender_step(setup, model)
    run = ap.compile(step)

    def aprender_train(i: int, x: np.ndarray, y: np.ndarray) -> float:
        opt.lr = warmup_lr(i)
        return run(x, y).item()

    last, ms = train_steps(aprender_train, batches)
    model.eval()
    fast = ap.compile(model)

    def aprender_forward(x: np.ndarray) -> np.ndarray:
        with ap.no_grad():
            return fast(x).data()

    ours = val_loss(aprender_forward, val_ids)
    print(f"\ntransformer, {steps} steps of {GPT_BATCH} x {CONTEXT} characters from the same "
          f"weights and batches:")
    print(f"  aprender compiled: last training loss {last:.4f}, validation {ours:.4f} nats/char "
          f"({cpu_note(ms)})")
    if torch is None:
        print("  (PyTorch is not installed: no comparison)")
        return
    net = torch_copy(start_state, setup.make_torch(), TORCH_LINEAR[setup.name])
    tstep, topt = torch_step(setup, net)

    def torch_train(i: int, x: Any, y: Any) -> float:
        for group in topt.param_groups:
            group["lr"] = warmup_lr(i)
        return float(tstep(x, y))

    tlast, ms = train_steps(torch_train, torch_batches(batches))
    net.eval()

    def torch_forward(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    theirs = val_loss(torch_forward, val_ids)
    gap = abs(ours - theirs)
    print(f"  pytorch eager:     last training loss {tlast:.4f}, validation {theirs:.4f} "
          f"nats/char ({cpu_note(ms)})")
    verdict = "met" if gap <= 0.05 else "MISSED"
    print(f"  difference {gap:.4f} nats/char (target <= 0.05: {verdict})")


# --- profile -------------------------------------------------------------------------------------
_GENERATED = "<aprender-generated"
_COMMENT_NAME = re.compile(r"#\s*(\w+) <-")
_TYPED = re.compile(r"([^\s:,(|]+): ([a-z]+\d+\[[\d,]*\])")
_NODE = re.compile(r"(\w+): [a-z]+\d+\[[\d,]*\] = (\w+) ([^#\n]*)")
_PHASE = re.compile(r"\s*\[(\w+)\]")


def describe_nodes(ir_text: str) -> dict[str, tuple[str, str, str]]:
    """Value name -> (op, phase, ``op(operand types) -> type``) from a printed IR graph; the
    phase is ``fwd``, ``bwd`` or ``update``."""
    types = dict(_TYPED.findall(ir_text))
    nodes, phase = {}, "?"
    for line in ir_text.splitlines():
        tag = _PHASE.match(line)
        phase = tag.group(1) if tag else phase  # a fused group's members follow its line
        node = _NODE.search(line)
        if node:
            name, op, rest = node.groups()
            operands = [o for o in rest.split(" [")[0].strip().split(", ") if o]
            nodes[name] = (op, phase, f"{op}({', '.join(types.get(o, '?') for o in operands)})"
                                      f" -> {types[name]}")
    return nodes


class LineTimer:
    """Wall time of every run of each line of aprender's generated code (``sys.settrace``,
    only in generated frames: a line's time runs from its line event to the next, so a kernel
    call's time falls on its line)."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, int], list[float]] = defaultdict(list)
        self.open: dict[int, tuple[tuple[str, int], float]] = {}

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        now = time.perf_counter()
        if id(frame) in self.open:
            where, since = self.open.pop(id(frame))
            self.times[where].append(now - since)
        if event == "line":
            self.open[id(frame)] = ((frame.f_code.co_filename, frame.f_lineno),
                                    time.perf_counter())
        return self._local

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        return self._local if frame.f_code.co_filename.startswith(_GENERATED) else None

    def run(self, call: Callable[[], Any], count: int) -> None:
        sys.settrace(self._global)
        try:
            for _ in range(count):
                call()
        finally:
            sys.settrace(None)


def profile_step(setup: Setup, batches: list, count: int) -> None:
    """Where the compiled training step's time goes: each generated line timed (totals by IR
    op, then the costliest lines with their shapes), and cProfile's functions by own time
    (kernels' Python and numpy methods; a ufunc's time counts as its caller's)."""
    step, _ = aprender_step(setup, setup.make())
    fast = ap.compile(step)
    call = cycling(fast, batches)
    for _ in range(3):
        call()
    start = time.perf_counter()
    for _ in range(count):
        call()
    plain = (time.perf_counter() - start) / count * 1e6
    nodes = describe_nodes(fast.ir("codegen"))
    timer = LineTimer()
    timer.run(call, count)
    by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    by_phase: dict[str, float] = defaultdict(float)
    lines = []
    for (file, line), runs in timer.times.items():
        us = statistics.median(runs) * len(runs) / count * 1e6  # medians: robust to preemption
        match = _COMMENT_NAME.search(linecache.getline(file, line))
        name = match.group(1) if match else "?"
        op, phase, what = nodes.get(name, (re.sub(r"(_\d+)+(_\w+)?$", "", name), "?", name))
        by_op[op][0] += us
        by_op[op][1] += 1
        by_phase[phase] += us
        lines.append((us, name, what))
    traced = sum(us for us, _ in by_op.values())
    phases = ", ".join(f"{k} {by_phase[k]:.0f} us" for k in ("fwd", "bwd", "update", "?")
                       if k in by_phase)
    print(f"\nprofile of the compiled {setup.name} step: {plain:.0f} us a step untraced, "
          f"{traced:.0f} us in its {len(lines)} generated lines traced (medians of {count} "
          f"steps; the tracer adds about 1 us a line): {phases}; by IR op:")
    for op, (us, n) in sorted(by_op.items(), key=lambda kv: -kv[1][0])[:14]:
        print(f"  {op:<20}{us:>9.0f} us {100 * us / traced:>5.1f}%  {n:>4} lines")
    print("  costliest lines:")
    for us, name, what in sorted(lines, reverse=True)[:14]:
        print(f"  {us:>9.0f} us  {name:<18} {what[:90]}")
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [call() for _ in range(count)])
    stats = pstats.Stats(profiler).stats  # (file, line, function) -> (cc, calls, tt, ct, _)
    print("  cProfile, functions by own time (profiled, so slower):")
    for (file, line, func), (_, calls, own, total, _) in sorted(
            stats.items(), key=lambda kv: -kv[1][2])[:12]:
        where = f"{file.rsplit('/', 1)[-1]}:{line}({func})" if line else func
        print(f"  {own / count * 1e6:>9.0f} us own {total / count * 1e6:>9.0f} us total "
              f"{calls // count:>5} calls  {where[:70]}")


# --- main -----------------------------------------------------------------------------------------
def setups(vocab: int) -> dict[str, Setup]:
    return {
        "cnn": Setup("cnn", lambda: cnn_aprender(0), cnn_torch, Tensor, {"lr": CNN_LR}, None),
        "transformer": Setup(
            "transformer", lambda: CharGPT(vocab, 0), lambda: gpt_torch(vocab), lambda x: x,
            {"lr": GPT_LR, "betas": GPT_BETAS, "weight_decay": GPT_DECAY}, GPT_CLIP)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cnn", "transformer", "all"), default="all")
    parser.add_argument("--quick", action="store_true",
                        help="few timing rounds and 20 convergence steps")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per system")
    parser.add_argument("--cnn-batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300,
                        help="training steps of the transformer's validation comparison")
    parser.add_argument("--no-torch-compile", action="store_true",
                        help="skip torch.compile (tens of seconds to compile each model)")
    parser.add_argument("--profile", action="store_true",
                        help="profile the compiled training steps line by line")
    args = parser.parse_args(argv)
    args.rounds = 7
    if args.quick:
        args.seconds, args.steps, args.rounds = 0.3, 20, 3
    if torch is not None:
        torch.set_num_threads(1)
        torch._logging.set_logs(dynamo=logging.ERROR)  # no notes on the profiler hooks it skips
        warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")
    train_ids, val_ids, vocab = load_text()
    print(f"numpy {np.__version__}, "
          f"{'torch ' + torch.__version__ if torch is not None else 'no PyTorch'}; "
          f"float32; medians of interleaved rounds in one process")
    names = ("cnn", "transformer") if args.model == "all" else (args.model,)
    for name in names:
        setup = setups(vocab)[name]
        batches = (image_batches(args.cnn_batch, 8, 0) if name == "cnn"
                   else text_batches(train_ids, 8, 0))
        print(f"\n=== {name} ===")
        train_table(setup, batches, args)
        inference_table(setup, batches[0][0], args)
        if name == "transformer":
            converge(setup, train_ids, val_ids, args.steps)
        if args.profile:
            profile_step(setup, batches, 40 if name == "cnn" else 7)


if __name__ == "__main__":
    main()
