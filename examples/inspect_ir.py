"""Trace the seed's MLP forward pass and a loss into IR graphs, print them, and write DOT
(and SVG when Graphviz is installed).

How to read a printed graph:

    graph loss(x: f32[8,4], model.fc1.weight: f32[4,16], ...) -> f32[]
      matmul_0: f32[8,16] = matmul x, model.fc1.weight   # inspect_ir.py:40: ...

- The first line is the signature: every input with its type. ``f32[8,4]`` is float32 with
  shape (8, 4); ``f32[]`` a scalar. Tensor arguments come first, then tensors the function
  reached (module parameters, closure variables), named after where they were found. They are
  inputs by reference: changing a parameter changes what the graph computes.
- Each following line is one op: ``name: type = op operands [attributes]``. Names say which op
  made the value and where it stands (``relu_2`` is the third op, a relu). ``constant`` lines
  hold values baked into the graph (Python numbers, arrays made inside the function).
- The trailing comment is your source line that called the op.
- ``return`` lists the outputs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.ir import Graph


def main(out_dir: str = "out/inspect_ir") -> None:
    model = nn.MLP(4, 16, 3, rng=0)
    x = Tensor(np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32))
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])

    forward = ap.trace(model, x)
    print("# the seed's MLP forward pass")
    print(forward)

    def loss(x: Tensor, labels: np.ndarray) -> Tensor:
        logits = model(x)
        return nn.cross_entropy(logits, labels)

    loss_graph = ap.trace(loss, x, labels)
    print("\n# a cross-entropy loss on top of it")
    print(loss_graph)

    # The graph runs on plain numpy arrays with each op's kernel: the same numbers as eager.
    params = [p.data() for p in model.parameters()]
    (value,) = loss_graph.evaluate(x.data(), *params)
    print(f"\nreference interpreter: {float(value):.6f}   eager: {loss(x, labels).item():.6f}")

    # JSON round trip: loading never executes anything, and prints the same graph.
    again = Graph.from_json(loss_graph.to_json())
    print(f"JSON round trip prints the same graph: {str(again) == str(loss_graph)}")

    # The eager tape is a graph too: what this thread recorded since clear_graph().
    ap.clear_graph()
    h = model(x).relu().sum()
    tape = ap.autograd.current_graph()
    print(f"eager tape: {len(tape.nodes)} ops, outputs {[v.name for v in tape.outputs]}, "
          f"value {h.item():.4f}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "loss.dot").write_text(loss_graph.to_dot())
    print(f"wrote {out / 'loss.dot'}")
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg", "-o", str(out / "loss.svg"), str(out / "loss.dot")],
                       check=True)
        print(f"wrote {out / 'loss.svg'}")
    else:
        print("Graphviz `dot` is not installed: render loss.dot elsewhere, or install graphviz "
              "and run `python -m aprender show FILE.json --format svg`")


if __name__ == "__main__":
    main(*sys.argv[1:2])
