"""The seed's training loop: linear regression y = 2x + 1 with hand-written gradient descent.

The seed uses lr 0.01 for 100 epochs, which stops short of the answer (after 100 steps it
gives w = 2.07, b = 0.79: b converges slowly at that rate). We keep the seed's loop exactly and
use lr 0.05 for 1000 epochs, which reaches w = 2.00, b = 1.00.
"""

from aprender.autograd import Tensor, clear_graph, no_grad


def train_linear_regression(learning_rate: float = 0.05, epochs: int = 1000) -> tuple[float,
                                                                                       float]:
    # Model parameters
    w = Tensor.from_slice([0.0]).requires_grad()
    b = Tensor.from_slice([0.0]).requires_grad()

    # Training data: y = 2x + 1
    x_train = Tensor.from_slice([1.0, 2.0, 3.0, 4.0])
    y_train = Tensor.from_slice([3.0, 5.0, 7.0, 9.0])

    for epoch in range(epochs):
        # Forward pass
        y_pred = x_train.mul(w).add(b)

        # Loss: MSE
        diff = y_pred.sub(y_train)
        loss = diff.mul(diff).mean()

        # Backward pass
        loss.backward()

        # Gradient descent update (no_grad to avoid tracking)
        def update(w: Tensor = w, b: Tensor = b) -> tuple[Tensor, Tensor]:
            w_grad, b_grad = w.grad(), b.grad()
            # w = w - lr * grad
            new_w = w.sub(w_grad.mul(Tensor.from_slice([learning_rate])))
            new_b = b.sub(b_grad.mul(Tensor.from_slice([learning_rate])))
            # Re-enable gradient tracking
            return new_w.requires_grad(), new_b.requires_grad()

        w, b = no_grad(update)

        # Clear graph for next iteration
        clear_graph()

        if epoch % 100 == 0:
            print(f"Epoch {epoch}: loss = {loss.item():.4f}")

    print(f"Learned: w = {w.item():.2f}, b = {b.item():.2f}")  # w ~ 2.0, b ~ 1.0
    return w.item(), b.item()


if __name__ == "__main__":
    train_linear_regression()
