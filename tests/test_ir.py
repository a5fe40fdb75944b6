"""IR graphs: tracing, golden printing, verification, JSON/DOT/networkx, the interpreter, the
eager tape as a graph, dumps and the show command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opcases import all_cases, inputs, traceable

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.ir import Graph, Node, Value, all_ops, get_op
from aprender.ir.serialize import IRFormatError
from aprender.ir.verify import VerifyError

W = Tensor(np.arange(6, dtype=np.float32).reshape(3, 2) / 10).requires_grad()


def linear_relu(x: Tensor, b: Tensor) -> Tensor:
    return (x @ W + b).relu()


def test_golden_text_of_a_traced_function() -> None:
    x = Tensor(np.ones((4, 3), dtype=np.float32))
    b = Tensor(np.zeros(2, dtype=np.float32))
    graph = ap.trace(linear_relu, x, b)
    line = "test_ir.py:28: return (x @ W + b).relu()"
    assert str(graph) == "\n".join([
        "graph linear_relu(x: f32[4,3], b: f32[2], W: f32[3,2]) -> f32[4,2]",
        f"  matmul_0: f32[4,2] = matmul x, W   # {line}",
        f"  add_1: f32[4,2] = add matmul_0, b  # {line}",
        f"  relu_2: f32[4,2] = relu add_1      # {line}",
        "  return relu_2",
    ])


def test_hand_built_graph_prints_in_the_spec_form() -> None:
    x, w, b = (Value("x", (32, 64), np.float32), Value("w", (64, 128), np.float32),
               Value("b", (128,), np.float32))
    v0, v1, v2 = (Value(f"%{i}", (32, 128), np.float32) for i in range(3))
    graph = Graph("linear_relu", [x, w, b], [
        Node(get_op("matmul"), (x, w), {}, out=v0),
        Node(get_op("add"), (v0, b), {}, out=v1),
        Node(get_op("relu"), (v1,), {}, out=v2),
    ], [v2])
    assert str(graph.verify()) == "\n".join([
        "graph linear_relu(x: f32[32,64], w: f32[64,128], b: f32[128]) -> f32[32,128]",
        "  %0: f32[32,128] = matmul x, w",
        "  %1: f32[32,128] = add %0, b",
        "  %2: f32[32,128] = relu %1",
        "  return %2",
    ])


def test_module_parameters_are_inputs_by_reference_named_by_path() -> None:
    model = nn.MLP(4, 8, 3, rng=0)
    x = Tensor(np.ones((2, 4), dtype=np.float32))

    def loss_fn(x: Tensor, labels: np.ndarray) -> Tensor:
        return nn.cross_entropy(model(x), labels)

    graph = ap.trace(loss_fn, x, np.array([0, 2]))
    names = [v.name for v in graph.inputs]
    assert names == ["x", "model.fc1.weight", "model.fc1.bias", "model.fc2.weight",
                     "model.fc2.bias", "model.fc3.weight", "model.fc3.bias"]
    params = [p.data() for p in model.parameters()]
    (loss,) = graph.evaluate(x.data(), *params)
    assert loss == loss_fn(x, np.array([0, 2])).data()  # bit for bit
    with ap.no_grad():
        model.fc3.bias.assign([1.0, 2.0, 3.0])  # by reference: new values, same graph
    (changed,) = graph.evaluate(x.data(), *[p.data() for p in model.parameters()])
    assert changed == loss_fn(x, np.array([0, 2])).data() and changed != loss
    assert all(n.src and "test_ir.py" in n.src for n in graph.nodes if n.op.name != "constant")
    assert [n.name for n in ap.trace(model, x).inputs][1] == "model.fc1.weight"


def test_seed_style_objects_and_scalars() -> None:
    class Linear:  # the seed's plain struct, not a Module
        def __init__(self) -> None:
            self.weight = Tensor(np.ones((2, 2))).requires_grad()

        def forward(self, x: Tensor) -> Tensor:
            return x.matmul(self.weight) * 3.0

    layer = Linear()
    graph = ap.trace(layer.forward, Tensor(np.ones((1, 2))))
    assert [v.name for v in graph.inputs] == ["x", "self.weight"]
    assert [n.op.name for n in graph.nodes] == ["matmul", "constant", "mul"]
    assert "constant value=3.0" in str(graph)


def test_control_flow_records_the_path_taken() -> None:
    def branchy(x: Tensor, use_exp: bool) -> Tensor:
        y = x.exp() if use_exp else x.tanh()
        for _ in range(3 if x.sum().item() > 0 else 1):
            y = y * 2.0
        return y

    pos, neg = Tensor([1.0, 2.0]), Tensor([-1.0, -2.0])
    ops = lambda g: [n.op.name for n in g.nodes if n.op.name != "constant"]  # noqa: E731
    assert ops(ap.trace(branchy, pos, True)) == ["exp", "sum", "mul", "mul", "mul"]
    assert ops(ap.trace(branchy, neg, False)) == ["tanh", "sum", "mul"]


def test_outputs_may_be_nested_and_tracing_changes_nothing() -> None:
    p = Tensor([1.0, 2.0]).requires_grad()

    def f(x: Tensor) -> dict:
        return {"a": x * p, "b": [x.sum(), x]}

    graph = ap.trace(f, Tensor([3.0, 4.0]))
    assert [v.name for v in graph.outputs] == ["mul_0", "sum_1", "x"]
    assert graph.meta["outputs"] == "dict(a, b)"
    assert p.grad() is None

    def bad(x: Tensor) -> Tensor:
        with ap.no_grad():
            p.sub_(1.0)
        return x

    updating = ap.trace(bad, Tensor([1.0, 1.0]))  # the update is in the graph, p unchanged
    assert p.tolist() == [1.0, 2.0] and p._vc[0] == 0
    assert "update p <- detach_2" in str(updating)
    got = updating.evaluate(np.ones(2, np.float32), p.data())[1]
    np.testing.assert_array_equal(got, [0.0, 1.0])
    with pytest.raises(ap.GraphError, match="outputs must be tensors"):
        ap.trace(lambda x: 3, Tensor([1.0]))


@pytest.mark.parametrize("case", all_cases()[0], ids=lambda c: c.name)
def test_every_op_round_trips_through_json_and_interpreter_is_exact(case) -> None:
    arrays = inputs(case)
    fn, extra = traceable(case)
    tensors = [Tensor(a) for a in arrays] + [Tensor(e) for e in extra]
    graph = ap.trace(fn, *tensors)
    text = graph.to_json()
    loaded = Graph.from_json(text)
    assert str(loaded) == str(graph)
    assert loaded.to_json() == text
    eager = fn(*tensors).data()
    for g in (graph, loaded):
        (got,) = g.evaluate(*arrays, *extra)
        np.testing.assert_array_equal(got, eager)


def test_one_hot_traces_and_round_trips() -> None:
    labels = Tensor(np.array([2, 0, 1]))
    graph = Graph.from_json(ap.trace(lambda y: y.one_hot(3) * 2.0, labels).to_json())
    np.testing.assert_array_equal(graph.evaluate(labels.data())[0], 2 * np.eye(3)[[2, 0, 1]])


def test_comparisons_and_casts_trace() -> None:
    def f(x: Tensor) -> list:
        return [x > 0, x >= 0, x < 0, x <= 0, x == 0, x != 0, x.sign(), x.astype(np.float32)]

    x = Tensor([-1.0, 0.0, 2.0])
    graph = Graph.from_json(ap.trace(f, x).to_json())
    for got, want in zip(graph.evaluate(x.data()), f(x), strict=True):
        np.testing.assert_array_equal(got, want.data())
        assert got.dtype == want.dtype


UNARY = ["exp", "tanh", "sigmoid", "relu", "neg", "gelu", "abs", "softplus"]
BINARY = ["add", "sub", "mul", "maximum"]


@settings(max_examples=25, deadline=None)
@given(program=st.lists(st.tuples(st.sampled_from(UNARY + BINARY + ["sum0", "mm", "T"]),
                                  st.integers(0, 100), st.integers(0, 100)),
                        min_size=1, max_size=12), seed=st.integers(0, 1000))
def test_random_op_graphs_interpret_exactly_like_eager(program, seed) -> None:
    rng = np.random.default_rng(seed)
    leaves = [Tensor(rng.standard_normal((3, 3))) for _ in range(2)]

    def run(a: Tensor, b: Tensor) -> Tensor:
        vals = [a, b]
        for op, i, j in program:
            x, y = vals[i % len(vals)], vals[j % len(vals)]
            if op in UNARY:
                vals.append(getattr(x, op)())
            elif op in BINARY:
                vals.append(getattr(x, op)(y))
            elif op == "sum0":
                vals.append(x.sum_axis(0, keepdims=True) + y)
            elif op == "mm":
                vals.append(x @ y)
            else:
                vals.append(x.T)
        return vals[-1] + vals[-2]

    graph = ap.trace(run, *leaves)
    loaded = Graph.from_json(graph.to_json())
    (got,) = loaded.evaluate(*[t.data() for t in leaves][:len(loaded.inputs)])
    np.testing.assert_array_equal(got, run(*leaves).data())


def _doc(**changes) -> str:
    graph = ap.trace(lambda x: x.exp().sum(), Tensor([1.0, 2.0]))
    doc = json.loads(graph.to_json())
    for path, value in changes.items():
        target = doc
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return json.dumps(doc)


@pytest.mark.parametrize(("text", "pattern"), [
    ("not json", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON|nested|expected dict"),
    (_doc(version=2), "version 1"),
    (_doc(nodes__0__op="__import__('os').system('touch /tmp/pwned')"), "unknown op"),
    (_doc(nodes__0__op="exec"), "unknown op"),
    (_doc(nodes__0__inputs=["nowhere"]), "not defined before use"),
    (_doc(nodes__0__out__dtype="object"), "unsupported dtype"),
    (_doc(nodes__0__out__shape=[2, "2"]), "shape is a list"),
    (_doc(nodes__0__out__shape=[3]), "declared f32\\[3\\] but the op gives f32\\[2\\]"),
    (_doc(nodes__1__attrs={"axis": {"tuple": [0]}, "keepdims": False, "x": 1}),
     "takes attributes"),
    (_doc(nodes__1__attrs={"axis": {"__class__": "os.system"}, "keepdims": False}),
     "unknown attribute form"),
    (_doc(nodes__1__attrs={"axis": [0], "keepdims": False}), "must be tagged"),
    (_doc(inputs=5), "expected list"),
    (_doc(outputs=["ghost"]), "is not defined"),
    (_doc(extra_key=1), "unknown keys"),
])
def test_hostile_or_malformed_json_is_rejected_without_side_effects(text, pattern,
                                                                    tmp_path) -> None:
    before = dict(all_ops())
    modules = set(sys.modules)
    with pytest.raises(IRFormatError, match=pattern):
        Graph.from_json(text)
    assert all_ops() == before
    assert set(sys.modules) == modules
    assert not list(tmp_path.iterdir())


def test_deeply_nested_attribute_is_rejected() -> None:
    deep: dict = {"tuple": [0]}
    for _ in range(50):
        deep = {"tuple": [deep]}
    with pytest.raises(IRFormatError, match="nested too deeply"):
        Graph.from_json(_doc(nodes__1__attrs={"axis": deep, "keepdims": False}))


def test_verify_catches_broken_graphs() -> None:
    x = Value("x", (2,), np.float32)
    y = Value("y", (3,), np.float32)
    with pytest.raises(VerifyError, match="declared f32\\[3\\] but the op gives f32\\[2\\]"):
        Graph("g", [x], [Node(get_op("exp"), (x,), {}, out=y)], [y]).verify()
    z = Value("z", (2,), np.float32)
    with pytest.raises(VerifyError, match="used before it is defined"):
        Graph("g", [x], [Node(get_op("exp"), (z,), {}, out=y)], [y]).verify()
    with pytest.raises(VerifyError, match="shape rule rejects"):
        Graph("g", [x, y], [Node(get_op("add"), (x, y), {}, out=z)], [z]).verify()


def test_dot_and_networkx_exports() -> None:
    graph = ap.trace(linear_relu, Tensor(np.ones((4, 3))), Tensor(np.zeros(2)))
    dot = graph.to_dot()
    assert dot.startswith('digraph "linear_relu" {')
    assert 'in0 -> n0 [label="f64[4,3]"]' in dot and "n2 -> out0" in dot
    g = graph.to_networkx()
    assert set(g.nodes) == {"x", "b", "W", "matmul_0", "add_1", "relu_2"}
    assert g.nodes["relu_2"]["output"] == 0 and g.nodes["matmul_0"]["op"] == "matmul"
    assert g.number_of_edges() == 5
    hostile = Graph("evil\"] ; x -> y [label=\"", graph.inputs, graph.nodes, graph.outputs)
    assert 'digraph "evil\\"] ; x -> y [label=\\"" {' in hostile.to_dot()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_dot_renders_with_graphviz() -> None:
    graph = ap.trace(linear_relu, Tensor(np.ones((4, 3))), Tensor(np.zeros(2)))
    done = subprocess.run(["dot", "-Tsvg"], input=graph.to_dot(), capture_output=True,
                          text=True, check=True)
    assert "<svg" in done.stdout


def test_current_graph_shows_the_eager_tape() -> None:
    ap.clear_graph()
    x = Tensor([1.0, 2.0]).requires_grad()
    y = (x * x).sum()
    graph = ap.autograd.current_graph()
    assert [n.op.name for n in graph.nodes] == ["mul", "sum"]
    assert [v.name for v in graph.inputs] == ["leaf_0"]
    assert [v.name for v in graph.outputs] == ["sum_1"]
    assert y.item() == 5.0
    ap.clear_graph()
    assert ap.autograd.current_graph().nodes == []


def test_dump_env_writes_text_dot_and_json(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("APRENDER_DUMP", str(tmp_path))
    ap.trace(linear_relu, Tensor(np.ones((4, 3))), Tensor(np.zeros(2)))
    ap.trace(linear_relu, Tensor(np.ones((5, 3))), Tensor(np.zeros(2)))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 6 and len({f.rsplit(".", 1)[0] for f in files}) == 2
    first = sorted(tmp_path.glob("*.json"))[0]
    assert str(Graph.from_json(first.read_text())).startswith("graph linear_relu(x: f64[4,3]")


def test_show_command_renders_text_and_dot_and_explains_missing_dot(tmp_path) -> None:
    path = tmp_path / "g.json"
    path.write_text(ap.trace(linear_relu, Tensor(np.ones((4, 3))), Tensor(np.zeros(2))).to_json())
    run = lambda *a: subprocess.run([sys.executable, "-m", "aprender", "show", str(path), *a],  # noqa: E731
                                    capture_output=True, text=True)
    text = run()
    assert text.returncode == 0 and text.stdout.startswith("graph linear_relu(")
    assert run("--format", "dot").stdout.startswith("digraph")
    svg = run("--format", "svg", "-o", str(tmp_path / "g.svg"))
    from aprender.ir.display import find_renderer

    if find_renderer():
        assert svg.returncode == 0 and (tmp_path / "g.svg").read_text().startswith("<")
    else:
        assert svg.returncode == 2 and "needs Graphviz's `dot`" in svg.stderr
    (tmp_path / "bad.json").write_text('{"format": "aprender.ir"}')
    bad = subprocess.run([sys.executable, "-m", "aprender", "show", str(tmp_path / "bad.json")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "version 1" in bad.stderr
