"""Data-parallel throughput: samples/s of one training step on 1 process x 1 BLAS thread,
1 process x 2 BLAS threads and 2 MPI ranks x 1 BLAS thread (DistributedDataParallel), at the
same global batch, eager and compiled, with the all-reduce time per step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py \
        [--models mlp,cnn] [--seconds 3]

Each configuration runs in fresh processes (BLAS threads are fixed when numpy loads):
``mpiexec -n 2`` for the ranks. The MLP is the medium step of benchmarks/train_step.py (batch
256, 784-512-512-10, float32, SGD); the CNN is benchmarks/models.py's (batch 256 of 8x8
images, AdamW, BatchNorm buffers broadcast from rank 0 every forward). Columns: the median
step over rounds of steps; ``comm ms``: the 2-rank step minus a step of the same per-rank batch
without DDP, timed on both ranks at once (what synchronizing costs: the all-reduces, waiting
for the slower rank); ``allreduce ms``: one blocking all-reduce of all gradients (one buffer)
on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BATCH = 256
HERE = Path(__file__).resolve().parent


def build(model: str, seed: int) -> tuple:
    """The model, its optimizer and a batch maker ``(rows) -> (x, labels)``."""
    import numpy as np

    import aprender as ap
    from aprender import nn

    sys.path.insert(0, str(HERE))
    if model == "mlp":
        net = nn.MLP(784, 512, 10, rng=seed)

        def batch(rows: int, rng: np.random.Generator) -> tuple:
            return rng.standard_normal((rows, 784), dtype=np.float32), rng.integers(0, 10, rows)

        return net, lambda p: ap.optim.SGD(p, lr=0.01), batch
    from models import CNN_LR, cnn_aprender

    def images(rows: int, rng: np.random.Generator) -> tuple:
        return rng.random((rows, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, rows)

    return cnn_aprender(seed), lambda p: ap.optim.AdamW(p, lr=CNN_LR), images


def timed(fn: Callable[[], object], seconds: float, agree: Callable[[float], float]) -> float:
    """Median milliseconds of ``fn`` over rounds of about 0.3 s, after a warm-up. ``agree``
    maps a number to the same number on every rank (the mean over the ranks), so the ranks
    run as many calls as each other and start every round together."""
    for _ in range(3):
        fn()
    start = time.perf_counter()
    fn()
    per_round = max(1, round(agree(0.3 / max(time.perf_counter() - start, 1e-6))))
    rounds: list[float] = []
    for _ in range(max(5, round(seconds / 0.3))):
        agree(0.0)
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - start) / per_round * 1e3)
    return statistics.median(rounds)


def measure(model_name: str, compiled: bool, wrapped: bool, bucket_mb: float, seconds: float,
            rows: int, seed: int, agree: Callable[[float], float]) -> float:
    """Median ms of one training step (a fresh model: no hooks of an earlier DDP)."""
    import numpy as np

    import aprender as ap
    from aprender import distributed as dist
    from aprender import nn
    from aprender.autograd import Tensor

    net, make_opt, make_batch = build(model_name, 0)
    rng = np.random.default_rng(seed)
    batches = [make_batch(rows, rng) for _ in range(8)]
    model = dist.DistributedDataParallel(net, bucket_mb=bucket_mb) if wrapped else net
    opt = make_opt(model.parameters())

    def step(x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss

    run = ap.compile(step) if compiled else step
    count = iter(range(10 ** 9))
    return timed(lambda: run(*batches[next(count) % len(batches)]), seconds, agree)


def worker(args: argparse.Namespace) -> None:
    """One configuration (run by ``main`` in fresh processes); prints JSON on rank 0."""
    import numpy as np

    from aprender import distributed as dist

    if args.ranks > 1:
        dist.init(timeout=120)
    rank, size = dist.rank(), dist.world_size()

    def agree(value: float) -> float:
        return float(dist.allreduce_array(np.array([value]), "mean")[0])

    result: dict[str, float] = {}
    for compiled in (False, True):
        mode = "compiled" if compiled else "eager"
        result[mode] = measure(args.model, compiled, size > 1, args.bucket_mb, args.seconds,
                               BATCH // size, rank, agree)
        if size > 1:  # the same per-rank step without DDP, both ranks at once
            result[mode + "/local"] = measure(args.model, compiled, False, args.bucket_mb,
                                              args.seconds, BATCH // size, rank, agree)
    if size > 1:
        net = build(args.model, 0)[0]
        grads = np.ones(sum(p.size for p in net.parameters()), dtype=np.float32)
        result["allreduce"] = timed(lambda: dist.allreduce_array(grads, "mean", check=False),
                                    1.0, agree)
    if rank == 0:
        print(json.dumps(result))


def run_config(model: str, ranks: int, threads: int, seconds: float, bucket_mb: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE",
                                                              "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--worker", "--model", model, "--ranks", str(ranks),
           "--seconds", str(seconds), "--bucket-mb", str(bucket_mb)]
    if ranks > 1:
        cmd = [str(Path(sys.executable).with_name("mpiexec")), "-n", str(ranks), *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    parser.add_argument("--bucket-mb", type=float, default=25.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    configs = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2),
               ("2 ranks x 1 thread", 2, 1)]
    print(f"global batch {BATCH}; DDP bucket_mb={args.bucket_mb}; median step over rounds")
    print(f"{'model':<6}{'configuration':<24}{'mode':<10}{'ms/step':>9}{'samples/s':>11}"
          f"{'vs 1x1':>8}{'comm ms':>9}{'allreduce ms':>14}")
    for model in args.models.split(","):
        results = [(label, run_config(model, ranks, threads, args.seconds, args.bucket_mb))
                   for label, ranks, threads in configs]
        for mode in ("eager", "compiled"):
            base = results[0][1][mode]
            for label, r in results:
                ms = r[mode]
                comm = f"{ms - r[mode + '/local']:.2f}" if mode + "/local" in r else ""
                reduce = f"{r['allreduce']:.2f}" if "allreduce" in r else ""
                print(f"{model:<6}{label:<24}{mode:<10}{ms:>9.2f}{BATCH / ms * 1e3:>11.0f}"
                      f"{base / ms:>7.2f}x{comm:>9}{reduce:>14}")


if __name__ == "__main__":
    main()
