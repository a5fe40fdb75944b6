"""The seed's Linear and MLP structs and its inference/validate functions, written with raw
tensors exactly as in the case study, training a small regression by hand.

(The seed draws weights with ``rand::random``; here a seeded numpy Generator plays that part.)
"""

from __future__ import annotations

import math

import numpy as np

from aprender.autograd import Tensor, clear_grad, clear_graph, is_grad_enabled, no_grad

RNG = np.random.default_rng(0)


class Linear:
    def __init__(self, in_features: int, out_features: int) -> None:
        # Xavier initialization
        scale = math.sqrt(2.0 / (in_features + out_features))
        weight_data = RNG.random(in_features * out_features).astype(np.float32) * scale - scale / 2
        bias_data = [0.0] * out_features
        self.weight = Tensor.new(weight_data, [in_features, out_features]).requires_grad()
        self.bias = Tensor.new(bias_data, [out_features]).requires_grad()

    def forward(self, x: Tensor) -> Tensor:
        # y = x @ W + b
        return x.matmul(self.weight).add(self.bias)

    def parameters(self) -> list[Tensor]:
        return [self.weight, self.bias]


class MLP:
    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        self.fc1 = Linear(input_dim, hidden_dim)
        self.fc2 = Linear(hidden_dim, hidden_dim)
        self.fc3 = Linear(hidden_dim, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        h1 = self.fc1.forward(x).relu()
        h2 = self.fc2.forward(h1).relu()
        return self.fc3.forward(h2)

    def parameters(self) -> list[Tensor]:
        params = []
        params.extend(self.fc1.parameters())
        params.extend(self.fc2.parameters())
        params.extend(self.fc3.parameters())
        return params


def inference(model: MLP, x: Tensor) -> Tensor:
    # Disable gradient tracking for inference
    def run() -> Tensor:
        assert not is_grad_enabled()
        return model.forward(x)  # no tape is recorded, saves memory

    return no_grad(run)


def validate(model: MLP, val_data: list[tuple[Tensor, Tensor]]) -> float:
    total_loss = 0.0
    with no_grad():
        for x, y in val_data:
            pred = model.forward(x)
            loss = pred.sub(y).pow(2.0).mean()
            total_loss += loss.item()
    return total_loss / len(val_data)


def make_batch(n: int) -> tuple[Tensor, Tensor]:
    """Targets y = sin(x0) + 0.5 * x1 * x2 on 3 inputs."""
    x = RNG.uniform(-2, 2, (n, 3)).astype(np.float32)
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3]).astype(np.float32)
    return Tensor(x), Tensor(y)


def main() -> None:
    model = MLP(3, 32, 1)
    train = [make_batch(32) for _ in range(8)]
    val_data = [make_batch(64) for _ in range(2)]
    lr = 0.05
    print(f"validation loss before training: {validate(model, val_data):.4f}")
    for epoch in range(300):
        for x, y in train:
            loss = model.forward(x).sub(y).pow(2.0).mean()
            loss.backward()
            with no_grad():
                for param in model.parameters():
                    param.sub_(param.grad().mul(lr))
            # IMPORTANT: clear the graph after each iteration, then the gradients
            clear_graph()
            for param in model.parameters():
                clear_grad(param.id())
        if epoch % 100 == 0:
            print(f"epoch {epoch}: last batch loss = {loss.item():.4f}")
    print(f"validation loss after training: {validate(model, val_data):.4f}")
    out = inference(model, val_data[0][0])
    print(f"inference output: shape {list(out.shape)}, requires grad: "
          f"{out.requires_grad_enabled()}")


if __name__ == "__main__":
    main()
