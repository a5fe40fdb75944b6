"""The seed's gradient check: autograd against central finite differences for f(x) = sum(x^2).

The seed uses eps = 1e-5 with f32 tensors; in float32 that difference quotient is dominated by
rounding (errors ~1e-2), so this port computes the numerical gradient in float64, where the
seed's 1e-4 tolerance holds.
"""

from collections.abc import Callable

import numpy as np

from aprender.autograd import Tensor, clear_graph


def numerical_gradient(f: Callable[[Tensor], Tensor], x: Tensor, eps: float) -> list[float]:
    grads = []
    for i in range(x.len()):
        x_plus = x.data().astype(np.float64)
        x_minus = x.data().astype(np.float64)
        x_plus[i] += eps
        x_minus[i] -= eps
        y_plus = f(Tensor.from_slice(x_plus)).item()
        y_minus = f(Tensor.from_slice(x_minus)).item()
        grads.append((y_plus - y_minus) / (2.0 * eps))
    return grads


def main() -> None:
    x = Tensor.from_slice([1.0, 2.0, 3.0]).requires_grad()

    # f(x) = sum(x^2) = x1^2 + x2^2 + x3^2
    def f(t: Tensor) -> Tensor:
        return t.pow(2.0).sum()

    # Autograd gradient
    y = f(x)
    y.backward()
    autograd_grad = x.grad()

    # Numerical gradient
    numerical_grad = numerical_gradient(f, x, 1e-5)

    print("Autograd:", autograd_grad.tolist())
    print("Numerical:", [round(g, 6) for g in numerical_grad])

    # Should be close: [2, 4, 6]
    for ag, ng in zip(autograd_grad.tolist(), numerical_grad, strict=True):
        assert abs(ag - ng) < 1e-4, "Gradient mismatch!"
    print("Gradient check passed")
    clear_graph()


if __name__ == "__main__":
    main()
