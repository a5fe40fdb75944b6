"""The rule of ap.compile, shown: a compiled call equals the eager call or refuses clearly.

    python examples/compiling.py

Compiles a training step reached through a closure, changes things between calls the way
users do (the learning rate, eval mode), prints the guards and why each
recompile happened, runs with check=True (the eager function beside every call), and shows a
refusal: a step that changes Python state (sched.step()) on every call.
"""

from __future__ import annotations

import numpy as np

import aprender as ap
from aprender import nn, optim
from aprender.autograd import Tensor


def make_world() -> tuple[nn.Module, optim.Optimizer]:
    model = nn.MLP(4, 8, 3, rng=0, dtype=np.float64)
    return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def main() -> None:
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((6, 4)), rng.integers(0, 3, 6)) for _ in range(4)]
    eager_model, eager_opt = make_world()
    model, opt = make_world()

    def step(model: nn.Module, opt: optim.Optimizer, x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss

    fast = ap.compile(lambda x, y: step(model, opt, x, y), check=True)
    for i, (x, y) in enumerate(batches):
        if i == 2:  # change things between calls: both worlds alike
            for o in (eager_opt, opt):
                o.lr = 0.01  # a 0-d tensor input: no recompile
            for m in (eager_model, model):
                m.eval()  # a Python flag the trace read: guarded, so it recompiles
        eager = step(eager_model, eager_opt, x, y).item()
        compiled = fast(x, y).item()
        print(f"call {i}: eager loss {eager:.10f}  compiled loss {compiled:.10f}")
    same = all(np.array_equal(a.data(), b.data()) or np.allclose(a.data(), b.data(), rtol=1e-12)
               for a, b in zip(eager_model.parameters(), model.parameters(), strict=True))
    print(f"parameters equal after 4 steps: {same}")
    info = fast.cache_info()
    print(f"compiles {info['compiles']}, hits {info['hits']}; why it recompiled:")
    for reason in info["miss_reasons"]:
        print(f"  - {reason}")
    print("guards checked before each call (first 6 of "
          f"{len(fast.guards().splitlines()) - 1}):")
    for line in fast.guards().splitlines()[1:7]:
        print(f"  {line}")

    sched = optim.StepLR(opt, step_size=1, gamma=0.5)

    def step_and_schedule(x: np.ndarray, y: np.ndarray) -> Tensor:
        loss = step(model, opt, x, y)
        sched.step()  # Python state changed on every call: cannot be compiled
        return loss

    refusing = ap.compile(step_and_schedule)
    try:
        for x, y in batches:
            refusing(x, y)
    except ap.AprenderError as e:
        print(f"refused: {type(e).__name__}: {str(e)[:150]}...")


if __name__ == "__main__":
    main()
