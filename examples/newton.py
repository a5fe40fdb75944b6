"""Newton's method with ``aprender.func.hessian``: L2-regularised logistic regression.

The loss is convex and smooth, so Newton steps ``w <- w - H^-1 g`` (gradient by
``aprender.func.grad``, Hessian by ``aprender.func.hessian`` = forward-over-reverse, both in one
compiled function) converge quadratically: the gradient norm squares each step. Gradient
descent with step 1/L (L the largest Hessian eigenvalue at the start) is printed beside it.

    python examples/newton.py
"""

from __future__ import annotations

import numpy as np

import aprender as ap
from aprender.autograd import Tensor
from aprender.func import grad, hessian


def make_data(n: int = 200, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-x @ w_true))).astype(np.float64)
    return x, y


def loss(w: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Mean logistic loss plus 0.05 |w|^2 (labels 0/1), written with softplus."""
    z = x @ w
    return (z.softplus() - y * z).mean() + (w * w).sum() * 0.05


def main() -> None:
    x, y = make_data()
    xt, yt = Tensor(x), Tensor(y)

    @ap.compile
    def newton_parts(w: Tensor, x: Tensor, y: Tensor) -> tuple:
        return loss(w, x, y), grad(loss)(w, x, y), hessian(loss)(w, x, y)

    w = np.zeros(x.shape[1])
    print("Newton's method")
    for step in range(6):
        value, g, h = newton_parts(Tensor(w), xt, yt)
        print(f"  step {step}: loss {value.item():.12f}  |grad| {np.linalg.norm(g.data()):.2e}")
        w = w - np.linalg.solve(h.data(), g.data())
    final = np.linalg.norm(newton_parts(Tensor(w), xt, yt)[1].data())
    print(f"  after 6 steps |grad| = {final:.2e}")

    step_size = 1.0 / np.linalg.eigvalsh(newton_parts(Tensor(np.zeros(x.shape[1])), xt, yt)[2]
                                         .data()).max()
    w = np.zeros(x.shape[1])
    fast_grad = ap.compile(grad(loss))
    steps, norm = 0, np.inf
    while norm > 1e-12 and steps < 10_000:
        g = fast_grad(Tensor(w), xt, yt).data()
        norm = np.linalg.norm(g)
        if steps == 6:
            print(f"gradient descent (step 1/L): after 6 steps |grad| = {norm:.2e}")
        w = w - step_size * g
        steps += 1
    print(f"gradient descent needs {steps} steps to reach |grad| <= 1e-12")

if __name__ == "__main__":
    main()
