"""The seed's basic gradient computation, element-wise ops, reductions, matrix ops,
activations and broadcasting, printing what the seed's comments say."""

from aprender.autograd import Tensor, clear_graph


def main() -> None:
    # Create tensors with gradient tracking
    x = Tensor.from_slice([1.0, 2.0, 3.0]).requires_grad()
    w = Tensor.from_slice([0.5, 0.5, 0.5]).requires_grad()

    # Forward pass: y = sum(x * w)
    z = x.mul(w)
    y = z.sum()

    # Backward pass
    y.backward()

    # dy/dx = w, dy/dw = x
    print("x.grad =", x.grad().tolist())  # [0.5, 0.5, 0.5]
    print("w.grad =", w.grad().tolist())  # [1.0, 2.0, 3.0]
    clear_graph()

    a = Tensor.from_slice([1.0, 2.0, 3.0]).requires_grad()
    b = Tensor.from_slice([4.0, 5.0, 6.0]).requires_grad()
    print("a + b =", a.add(b).tolist())
    print("a - b =", a.sub(b).tolist())
    print("a * b =", a.mul(b).tolist())
    print("a / b =", a.div(b).tolist())
    print("-a =", a.neg().tolist())
    print("exp(a) =", [round(v, 4) for v in a.exp().tolist()])
    print("log(a) =", [round(v, 4) for v in a.log().tolist()])
    print("sqrt(a) =", [round(v, 4) for v in a.sqrt().tolist()])
    print("a^2 =", a.pow(2.0).tolist())

    m = Tensor.new([1.0, 2.0, 3.0, 4.0], [2, 2]).requires_grad()
    print("sum =", m.sum().item(), "mean =", m.mean().item())
    print("sum_axis(0) =", m.sum_axis(0).tolist(), "sum_axis(1) =", m.sum_axis(1).tolist())

    n = Tensor.new([5.0, 6.0, 7.0, 8.0], [2, 2]).requires_grad()
    print("matmul =", m.matmul(n).tolist())
    print("transpose =", m.transpose().tolist())
    print("view([4]) =", m.view([4]).tolist())

    v = Tensor.from_slice([-1.0, 0.0, 1.0]).requires_grad()
    print("relu =", v.relu().tolist())
    print("sigmoid =", [round(t, 2) for t in v.sigmoid().tolist()])
    print("tanh =", [round(t, 2) for t in v.tanh().tolist()])
    print("gelu =", [round(t, 2) for t in v.gelu().tolist()])
    print("leaky_relu =", [round(t, 2) for t in v.leaky_relu(0.01).tolist()])
    logits = Tensor.from_slice([1.0, 2.0, 3.0]).requires_grad()
    print("softmax =", [round(t, 2) for t in logits.softmax().tolist()])

    xb = Tensor.new([1.0, 2.0, 3.0, 4.0], [2, 2]).requires_grad()
    bias = Tensor.from_slice([10.0, 20.0]).requires_grad()
    yb = xb.add_broadcast(bias)
    print("x + bias =", yb.tolist())  # [[11, 22], [13, 24]]
    yb.sum().backward()
    print("bias.grad =", bias.grad().tolist())  # [2.0, 2.0]
    clear_graph()


if __name__ == "__main__":
    main()
