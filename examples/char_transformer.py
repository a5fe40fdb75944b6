"""Train a GPT-style character model on the documentation text that ships with CPython.

The text is ``pydoc_data.topics`` (the help() topics of the Python reference, ~465 K
characters, ~103 symbols), split 90/10 into training and validation text by position. The model
is a token embedding plus a learned position embedding, pre-norm Transformer blocks (causal
self-attention and a GELU MLP, ``nn.TransformerEncoderLayer(norm_first=True)`` with a causal
mask), dropout, a final LayerNorm and an output head (``--tie``: the token embedding, transposed).
AdamW with a linear warmup and cosine decay, gradient clipping, random windows from a seeded
numpy Generator. A progress bar shows tokens/s and the validation loss; the validation loss of a
bigram count model (add-one smoothed counts of the training text) is printed beside the
transformer's; a loss-curve PNG is written; the end samples text at a temperature with the
forward compiled by ``ap.compile`` in eval mode.

    python examples/char_transformer.py [--compile] [--steps 1200] [--tie] [--quick]

The training loss is measured in training mode (with dropout), so it runs above the validation
loss; the end also prints the loss of as many training windows in eval mode. (The validation
text, the last topics ``typesmapping`` .. ``yield``, is also a little easier than the average:
a bigram fitted on the first 80% scores 2.33 on it and 2.46 on the next 10%.)

``--compile`` compiles the whole training step (forward, loss, backward, clipping, AdamW,
dropout masks from ``ap.Generator`` streams); it trains exactly as the eager step does.
``--quick`` is a tiny model trained for 100 steps (seconds; for CI).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from pydoc_data.topics import topics
from typing import Any

import matplotlib
import numpy as np
from tqdm import tqdm

import aprender as ap
import aprender.nn.functional as F
from aprender import nn
from aprender.autograd import Tensor

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

QUICK = {"d_model": 32, "heads": 2, "layers": 1, "context": 32, "batch_size": 16, "steps": 100,
         "warmup": 10, "eval_every": 25, "eval_batches": 2, "lr": 1e-2, "sample_len": 80}


def load_text() -> str:
    """The pydoc topics joined in sorted key order."""
    return "".join(topics[k] for k in sorted(topics))


def bigram_loss(train: np.ndarray, val: np.ndarray, vocab: int, k: float = 1.0) -> float:
    """Validation loss (nats/char) of add-``k`` smoothed bigram counts of the training text."""
    counts = np.full((vocab, vocab), k)
    np.add.at(counts, (train[:-1], train[1:]), 1.0)
    log_p = np.log(counts / counts.sum(axis=1, keepdims=True))
    return float(-log_p[val[:-1], val[1:]].mean())


def tanh_gelu(x: Tensor) -> Tensor:
    """GELU in its tanh form (GPT-2's; about 20% faster per step here than the erf form)."""
    return F.gelu(x, approximate="tanh")


class CharTransformer(nn.Module):
    """Embeddings, ``layers`` pre-norm causal Transformer blocks, LayerNorm and the output head.

    Embeddings start N(0, 0.02) (GPT-2's choice; PyTorch's N(0, 1) would make tied logits huge),
    so the first loss is about ln(vocab).
    """

    def __init__(self, vocab: int, d_model: int, heads: int, layers: int, context: int,
                 dropout: float, tie: bool, seed: int, gelu: str = "tanh") -> None:
        gen = np.random.default_rng(seed)
        self.tok = nn.Embedding(vocab, d_model, rng=gen)
        self.pos = nn.Embedding(context, d_model, rng=gen)
        for table in (self.tok, self.pos):
            table.weight = Tensor(0.02 * table.weight.data()).requires_grad()
        self.drop = nn.Dropout(dropout, rng=gen)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout,
                                       activation=tanh_gelu if gelu == "tanh" else "gelu",
                                       batch_first=True, norm_first=True, rng=gen)
            for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = None if tie else nn.Linear(d_model, vocab, rng=gen)
        self.context = context

    def forward(self, idx: np.ndarray) -> Tensor:
        """Logits ``[N, T, vocab]`` for the integer characters ``idx [N, T]``, T <= context."""
        t = idx.shape[1]
        mask = np.triu(np.ones((t, t), dtype=bool), 1)  # True: masked (a later position)
        h = self.drop(self.tok(idx).add(self.pos.weight[:t]))
        for block in self.blocks:
            h = block(h, src_mask=mask, is_causal=True)
        h = self.norm(h)
        return h.matmul(self.tok.weight.T) if self.head is None else self.head(h)


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warmup to ``args.lr``, then cosine decay to ``args.lr / 10``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    done = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * min(done, 1.0))))


def windows(ids: np.ndarray, starts: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[N, context]`` and next-character targets for windows starting at ``starts``."""
    rows = starts[:, None] + np.arange(context + 1)
    chunk = ids[rows]
    return chunk[:, :-1], chunk[:, 1:]


def make_eval(model: CharTransformer, compiled: bool) -> Callable[[np.ndarray, np.ndarray],
                                                                    np.ndarray]:
    """Per-window mean losses ``[N]`` of ``(x, y)`` in eval mode without gradients."""
    def losses(x: np.ndarray, y: np.ndarray) -> Tensor:
        logits = model(x)
        per = F.cross_entropy(logits.reshape((-1, logits.shape[-1])), y.reshape(-1),
                              reduction="none")
        return per.reshape(x.shape).mean(1)

    run = ap.compile(losses) if compiled else losses

    def evaluate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        model.eval()
        with ap.no_grad():
            out = run(x, y).data()
        model.train()
        return out
    return evaluate


def mean_loss(evaluate: Callable, ids: np.ndarray, starts: np.ndarray, context: int,
              batch: int) -> float:
    """Mean loss of the windows at ``starts``, in batches of ``batch`` (the last one padded with
    repeated windows so every call has one shape)."""
    total = []
    for i in range(0, len(starts), batch):
        part = starts[i:i + batch]
        padded = np.resize(part, batch)
        total.append(evaluate(*windows(ids, padded, context))[:len(part)])
    return float(np.concatenate(total).mean())


def train(model: CharTransformer, args: argparse.Namespace, train_ids: np.ndarray,
          val_ids: np.ndarray) -> dict[str, Any]:
    """Train ``model``; returns the step losses, the validation points, times and token rate."""
    params = model.parameters()
    opt = ap.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay)

    def step(x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape((-1, logits.shape[-1])), y.reshape(-1))
        loss.backward()
        ap.optim.clip_grad_norm_(params, args.clip)
        opt.step()
        return loss

    run = ap.compile(step) if args.compile else step
    evaluate = make_eval(model, args.compile)
    rng = np.random.default_rng(args.seed)
    high = len(train_ids) - args.context - 1
    eval_starts = rng.integers(0, len(val_ids) - args.context - 1,
                               args.eval_batches * args.batch_size)
    losses: list[float] = []
    val_points: list[tuple[int, float]] = []
    tokens = args.batch_size * args.context
    start = time.perf_counter()
    bar = tqdm(range(args.steps), desc="compiled" if args.compile else "eager", unit="step")
    for i in bar:
        opt.lr = lr_at(i, args)
        x, y = windows(train_ids, rng.integers(0, high, args.batch_size), args.context)
        losses.append(run(x, y).item())
        rate = (i + 1) * tokens / (time.perf_counter() - start)
        if (i + 1) % args.eval_every == 0 or i + 1 == args.steps:
            val = mean_loss(evaluate, val_ids, eval_starts, args.context, args.batch_size)
            val_points.append((i + 1, val))
            bar.write(f"step {i + 1:5d}  train {np.mean(losses[-args.eval_every:]):.4f}  "
                      f"val {val:.4f}  lr {opt.lr:.2e}  {rate:,.0f} tokens/s")
        last_val = f"{val_points[-1][1]:.3f}" if val_points else "-"
        bar.set_postfix(loss=f"{losses[-1]:.3f}", val=last_val, tok_s=f"{rate:,.0f}",
                        refresh=False)
    seconds = time.perf_counter() - start
    full = np.arange(0, len(val_ids) - args.context - 1, args.context)
    return {"losses": losses, "val_points": val_points, "seconds": seconds,
            "tokens_per_s": args.steps * tokens / seconds,
            "val_loss": mean_loss(evaluate, val_ids, full, args.context, args.batch_size),
            "train_eval_loss": mean_loss(evaluate, train_ids, rng.integers(0, high, len(full)),
                                         args.context, args.batch_size),
            "cache": run.cache_info() if args.compile else None}


def sample(model: CharTransformer, stoi: dict[str, int], itos: list[str], prompt: str,
           length: int, temperature: float, seed: int) -> tuple[str, Any]:
    """``length`` characters after ``prompt`` at ``temperature``, one compiled forward per
    character on a full ``[1, context]`` window. A prompt shorter than the window is padded on
    the right: causal attention keeps the padding out of the real positions, whose logits are
    exactly the unpadded ones. Returns the text and the compiled forward's cache info."""
    model.eval()
    forward = ap.compile(model)
    rng = np.random.default_rng(seed)
    ids = [stoi[c] for c in prompt if c in stoi] or [0]
    t = model.context
    with ap.no_grad():
        for _ in range(length):
            window = np.zeros((1, t), dtype=np.int64)
            real = ids[-t:]
            window[0, :len(real)] = real
            logits = forward(window).data()[0, len(real) - 1].astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    model.train()
    return "".join(itos[i] for i in ids[-length:]), forward.cache_info()


def time_forward(model: CharTransformer, x: np.ndarray, reps: int = 10) -> tuple[float, float]:
    """Median milliseconds of one eval-mode forward of ``x`` without gradients: eager and
    compiled (``ap.compile(model)``, compiled before timing)."""
    model.eval()
    times = []
    with ap.no_grad():
        for forward in (model, ap.compile(model)):
            forward(x)
            runs = []
            for _ in range(reps):
                start = time.perf_counter()
                forward(x)
                runs.append(time.perf_counter() - start)
            times.append(float(np.median(runs)) * 1e3)
    model.train()
    return times[0], times[1]


def plot(result: dict[str, Any], bigram: float, path: Path) -> None:
    losses = np.asarray(result["losses"])
    smooth = np.convolve(losses, np.ones(20) / 20, mode="valid") if len(losses) >= 20 else losses
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(np.arange(len(losses)) + 1, losses, color="C0", alpha=0.25, linewidth=0.8)
    ax.plot(np.arange(len(smooth)) + len(losses) - len(smooth) + 1, smooth, color="C0",
            label="train (20-step mean)")
    steps, vals = zip(*result["val_points"], strict=True)
    ax.plot(steps, vals, "o-", color="C1", markersize=3, label="validation")
    ax.axhline(bigram, color="gray", linestyle="--", label=f"bigram counts ({bigram:.3f})")
    ax.set(xlabel="step", ylabel="loss (nats/char)",
           title=f"char transformer on pydoc topics (val {result['val_loss']:.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--clip", type=float, default=1.0, help="max global gradient norm")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--gelu", choices=("tanh", "exact"), default="tanh",
                        help="GELU form in the MLP: tanh approximation (GPT-2) or exact (erf)")
    parser.add_argument("--tie", action="store_true", help="output head = embedding transposed")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--eval-batches", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--sample-len", type=int, default=300)
    parser.add_argument("--prompt", default="The ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/char_transformer", help="folder for the plot")
    parser.add_argument("--compile", action="store_true", help="compile the training step")
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps (for CI)")
    args = parser.parse_args(argv)
    if args.quick:  # the quick sizes become the defaults; flags given still win
        parser.set_defaults(**QUICK)
        args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the example; returns the numbers it printed (for tests)."""
    args = parse_args(argv)
    ap.manual_seed(args.seed)
    text = load_text()
    itos = sorted(set(text))
    stoi = {c: i for i, c in enumerate(itos)}
    ids = np.array([stoi[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    print(f"pydoc topics: {len(text):,} characters, {len(itos)} symbols; "
          f"{len(train_ids):,} for training, {len(val_ids):,} for validation")
    bigram = bigram_loss(train_ids, val_ids, len(itos))
    print(f"bigram counts (add-one) validation loss: {bigram:.4f} nats/char "
          f"(uniform: ln {len(itos)} = {math.log(len(itos)):.4f})")

    model = CharTransformer(len(itos), args.d_model, args.heads, args.layers, args.context,
                            args.dropout, args.tie, args.seed, args.gelu)
    count = sum(p.numel() for p in model.parameters())
    print(f"model: d_model {args.d_model}, {args.heads} heads, {args.layers} layers, context "
          f"{args.context}, {args.gelu} GELU, dropout {args.dropout}, tied head {args.tie}: "
          f"{count:,} parameters; "
          f"{args.steps} steps of {args.batch_size} x {args.context} characters, "
          f"{'compiled' if args.compile else 'eager'}")
    result = train(model, args, train_ids, val_ids)
    print(f"trained in {result['seconds']:.1f} s ({result['seconds'] / args.steps * 1e3:.1f} "
          f"ms/step, {result['tokens_per_s']:,.0f} tokens/s)")
    if result["cache"] is not None:
        print(f"compiled step cache: {result['cache']['hits']} hits, "
              f"{result['cache']['misses']} misses")
    print(f"validation loss (nats/char): transformer {result['val_loss']:.4f}  "
          f"bigram {bigram:.4f}  (first training loss {result['losses'][0]:.4f}; as many "
          f"training windows in eval mode: {result['train_eval_loss']:.4f})")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(result, bigram, out / "char_transformer_loss.png")
    print(f"loss curve: {out / 'char_transformer_loss.png'}")

    text_out, cache = sample(model, stoi, itos, args.prompt, args.sample_len, args.temperature,
                             args.seed)
    print(f"sample (temperature {args.temperature}, compiled forward: {cache['misses']} compile,"
          f" {cache['hits']} hits):")
    print(args.prompt + text_out)
    for n in (1, args.batch_size):
        eager_ms, compiled_ms = time_forward(model, np.zeros((n, args.context), dtype=np.int64))
        print(f"eval forward [{n}, {args.context}]: eager {eager_ms:.2f} ms, compiled "
              f"{compiled_ms:.2f} ms ({eager_ms / compiled_ms:.1f}x)")
    return {**result, "bigram": bigram, "sample": text_out, "vocab": itos,
            "sample_cache": cache, "png": out / "char_transformer_loss.png"}


if __name__ == "__main__":
    main()
