"""The IR graph types and their text form."""

from __future__ import annotations

import numpy as np

from aprender.ir import Graph, Node, Value, get_op, type_str


def test_graph_prints_one_op_per_line_with_types() -> None:
    x, w, b = Value("x", (32, 64), np.float32), Value("w", (64, 128), np.float32), Value(
        "b", (128,), np.float32)
    v0, v1, v2 = (Value(f"%{i}", (32, 128), np.float32) for i in range(3))
    graph = Graph("linear_relu", [x, w, b], [
        Node(get_op("matmul"), (x, w), {}, out=v0),
        Node(get_op("add"), (v0, b), {}, out=v1),
        Node(get_op("relu"), (v1,), {}, out=v2, src="model.py:12"),
    ], [v2])
    assert str(graph) == "\n".join([
        "graph linear_relu(x: f32[32,64], w: f32[64,128], b: f32[128]) -> f32[32,128]",
        "  %0: f32[32,128] = matmul x, w",
        "  %1: f32[32,128] = add %0, b",
        "  %2: f32[32,128] = relu %1  # model.py:12",
        "  return %2",
    ])


def test_attrs_are_printed_readably() -> None:
    x = Value("x", (3, 4), np.float64)
    y = Value("y", (3, 2), np.float64)
    node = Node(get_op("getitem"), (x,), {"index": (slice(None), slice(1, 3))}, out=y)
    assert str(Graph("g", [x], [node], [y])).splitlines()[1] == (
        "  y: f64[3,2] = getitem x [index=(:, 1:3)]")
    assert type_str((), np.bool_) == "bool[]"
