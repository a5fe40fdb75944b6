"""The compiler: symbolic autodiff, passes, fusion, buffer planning and generated code."""

from __future__ import annotations

import ast
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opcases import all_cases, inputs, traceable

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.compiler import joint, lower, split
from aprender.compiler.buffers import plan_buffers
from aprender.compiler.executor import ExecutionError
from aprender.compiler.passes import (
    cse,
    dce,
    decompose,
    fold_constants,
    lower_reductions,
    simplify,
)
from aprender.ir import Graph, Node, Value, get_op
from aprender.ir.graph import FusedNode


def _eager_grads(fn, arrays, extra=()):
    xs = [Tensor(a).requires_grad() for a in arrays]
    out = fn(*xs, *[Tensor(e) for e in extra])
    out.backward(np.ones(out.shape))
    return out.data(), [np.zeros(x.shape) if x.grad() is None else x.grad().data() for x in xs]


@pytest.mark.parametrize("case", [c for c in all_cases()[0] if c.grads], ids=lambda c: c.name)
def test_generated_code_equals_interpreter_and_eager_for_every_op(case) -> None:
    arrays = inputs(case)
    fn, extra = traceable(case)
    graph = ap.trace(fn, *[Tensor(a) for a in arrays], *[Tensor(e) for e in extra])
    full = joint(graph, graph.inputs[:len(arrays)]).graph
    compiled = lower(full)
    got = compiled(*arrays, *extra)
    reference = full.evaluate(*arrays, *extra)
    for a, b in zip(got, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    value, grads = _eager_grads(fn, arrays, extra)
    np.testing.assert_allclose(got[0], value, rtol=1e-12, atol=1e-15)
    for a, b in zip(got[1:], grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


UNARY = ["exp", "tanh", "sigmoid", "relu", "neg", "gelu", "abs", "softplus"]
BINARY = ["add", "sub", "mul", "maximum", "div"]


@settings(max_examples=30, deadline=None)
@given(program=st.lists(st.tuples(st.sampled_from(UNARY + BINARY + ["sum0", "sum1", "mm", "T",
                                                                    "mean", "bias"]),
                                  st.integers(0, 50), st.integers(0, 50)),
                        min_size=1, max_size=14), seed=st.integers(0, 1000))
def test_random_dags_compile_to_the_interpreters_values_and_gradients(program, seed) -> None:
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.5, 1.5, (3, 3)), rng.uniform(0.5, 1.5, (3,)),
              rng.uniform(0.5, 1.5, (3, 1))]

    def run(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
        vals = [a, a * b, a + c]  # broadcasting from the start
        for op, i, j in program:
            x, y = vals[i % len(vals)], vals[j % len(vals)]
            if op in UNARY:
                vals.append(getattr(x, op)())
            elif op in BINARY:
                vals.append(getattr(x, op)(y.abs() + 0.5 if op == "div" else y))
            elif op == "sum0":
                vals.append(x.sum_axis(0, keepdims=True) * y)
            elif op == "sum1":
                vals.append(x.sum_axis(1).reshape(3, 1) + y)
            elif op == "mean":
                vals.append(x.mean() * y)
            elif op == "bias":
                vals.append(x + b)
            elif op == "mm":
                vals.append(x @ y)
            else:
                vals.append(x.T)
        return (vals[-1] * vals[-2]).sum()

    graph = ap.trace(run, *[Tensor(a) for a in arrays])
    full = joint(graph, graph.inputs).graph
    got = lower(full)(*arrays)
    for a, b in zip(got, full.evaluate(*arrays), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300)
    _, grads = _eager_grads(run, arrays)
    for a, b in zip(got[1:], grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# --- passes on small golden graphs --------------------------------------------------------------

def _g(*lines_nodes, inputs, outputs) -> Graph:
    return Graph("g", list(inputs), list(lines_nodes), list(outputs)).verify()


def _node(op: str, inputs, out: Value, **attrs) -> Node:
    return Node(get_op(op), tuple(inputs), attrs, out=out)


def test_dce_drops_unused_nodes() -> None:
    x = Value("x", (2,), np.float64)
    a, b, c = (Value(n, (2,), np.float64) for n in "abc")
    g = _g(_node("exp", [x], a), _node("tanh", [x], b), _node("neg", [a], c),
           inputs=[x], outputs=[c])
    assert [n.out.name for n in dce(g).nodes] == ["a", "c"]


def test_cse_merges_repeats_including_equal_constants() -> None:
    x = Value("x", (2,), np.float64)
    a, b, c, k1, k2, d = (Value(n, s, np.float64) for n, s in
                          [("a", (2,)), ("b", (2,)), ("c", (2,)), ("k1", ()), ("k2", ()),
                           ("d", (2,))])
    g = _g(_node("exp", [x], a), _node("exp", [x], b), _node("add", [a, b], c),
           _node("constant", [], k1, value=np.array(2.0)),
           _node("constant", [], k2, value=np.array(2.0)), _node("mul", [c, k2], d),
           inputs=[x], outputs=[d])
    text = str(dce(cse(g)))
    assert "c: f64[2] = add a, a" in text and "d: f64[2] = mul c, k1" in text
    assert "b:" not in text and "k2" not in text


def test_fold_constants_evaluates_constant_subgraphs() -> None:
    x = Value("x", (2,), np.float64)
    k1, k2, k3, y = (Value(n, s, np.float64) for n, s in
                     [("k1", ()), ("k2", ()), ("k3", ()), ("y", (2,))])
    g = _g(_node("constant", [], k1, value=np.array(2.0)),
           _node("constant", [], k2, value=np.array(3.0)), _node("mul", [k1, k2], k3),
           _node("add", [x, k3], y), inputs=[x], outputs=[y])
    folded = dce(fold_constants(g))
    assert [n.op.name for n in folded.nodes] == ["constant", "add"]
    assert folded.nodes[0].attrs["value"] == 6.0
    np.testing.assert_array_equal(folded.evaluate(np.array([1.0, 2.0]))[0], [7.0, 8.0])


def test_simplify_identities() -> None:
    x = Value("x", (2, 3), np.float64)
    one, zero = Value("one", (), np.float64), Value("zero", (), np.float64)
    nodes = [_node("constant", [], one, value=np.array(1.0)),
             _node("constant", [], zero, value=np.array(-0.0))]
    names = iter(f"t{i}" for i in range(20))

    def add(op, ins, out_shape=(2, 3), **attrs):
        v = Value(next(names), out_shape, np.float64)
        nodes.append(_node(op, ins, v, **attrs))
        return v

    a = add("mul", [x, one])                      # x * 1 -> x
    b = add("add", [zero, a])                     # (-0) + x -> x
    c = add("transpose", [b], out_shape=(3, 2), axes=(1, 0))
    d = add("transpose", [c], out_shape=(2, 3), axes=(1, 0))  # transpose of transpose -> x
    e = add("neg", [d])
    f = add("neg", [e])                           # neg neg -> x
    r1 = add("reshape", [f], out_shape=(6,), shape=(6,))
    r2 = add("reshape", [r1], out_shape=(3, 2), shape=(3, 2))  # reshape chain -> one reshape
    s = add("sum", [x], out_shape=(), axis=None, keepdims=False)
    rs = add("reshape", [s], out_shape=(1, 1), shape=(1, 1))
    bs = add("broadcast_to", [rs], shape=(2, 3))
    m = add("mul", [bs, x])                       # broadcast of a sum -> plain broadcasting
    g = _g(*nodes, inputs=[x], outputs=[r2, m])
    out = dce(simplify(g))
    ops = [n.op.name for n in out.nodes]
    assert ops == ["reshape", "sum", "reshape", "mul"], ops
    assert out.nodes[0].inputs[0] is x and out.nodes[0].attrs["shape"] == (3, 2)
    assert out.nodes[3].inputs[0].shape == (1, 1)
    data = np.arange(6.0).reshape(2, 3)
    for a_, b_ in zip(out.evaluate(data), g.evaluate(data), strict=True):
        np.testing.assert_array_equal(a_, b_)


def test_lower_reductions_uses_gemv_for_leading_sums_and_divides_means() -> None:
    x = Value("x", (4, 3), np.float64)
    s, m = Value("s", (3,), np.float64), Value("m", (), np.float64)
    g = _g(_node("sum", [x], s, axis=(0,), keepdims=False),
           _node("mean", [x], m, axis=None, keepdims=False), inputs=[x], outputs=[s, m])
    lowered = lower_reductions(g).verify()
    assert [n.op.name for n in lowered.nodes] == ["constant", "matmul", "sum", "constant", "div"]
    data = np.random.default_rng(0).standard_normal((4, 3))
    got = lower(lowered, passes=())(data)
    np.testing.assert_allclose(got[0], data.sum(0), rtol=1e-14)
    assert got[1] == np.mean(data)
    assert "dot(c0, v_x, out=None)" in lower(lowered, passes=()).source


def test_lower_reductions_names_never_collide() -> None:
    x = Value("x", (4, 3), np.float64)
    taken, m = Value("m_sum", (), np.float64), Value("m", (), np.float64)
    g = _g(_node("sum", [x], taken, axis=None, keepdims=False),
           _node("mean", [x], m, axis=None, keepdims=False), inputs=[x], outputs=[taken, m])
    lowered = lower_reductions(g).verify()  # a second "m_sum" would fail verification
    assert "m_sum_1" in {n.out.name for n in lowered.nodes}


def test_decompose_splits_cross_entropy_and_reuses_log_softmax_for_softmax() -> None:
    z, t = Value("z", (4, 3), np.float64), Value("t", (4, 3), np.float64)
    loss, p = Value("loss", (4,), np.float64), Value("p", (4, 3), np.float64)
    g = _g(_node("cross_entropy", [z, t], loss), _node("softmax", [z], p, axis=1),
           inputs=[z, t], outputs=[loss, p])
    out = decompose(g).verify()
    assert [n.op.name for n in out.nodes] == ["log_softmax", "mul", "sum", "neg", "exp"]
    assert out.nodes[4].inputs[0] is out.nodes[0].out
    rng = np.random.default_rng(0)
    data = [rng.standard_normal((4, 3)), rng.dirichlet(np.ones(3), 4)]
    for a, b in zip(out.evaluate(*data), g.evaluate(*data), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_simplify_knows_one_hot_rows_sum_to_one() -> None:
    y = Value("y", (4,), np.int64)
    h, s = Value("h", (4, 3), np.float32), Value("s", (4, 1), np.float32)
    g = _g(_node("one_hot", [y], h, num_classes=3, dtype=np.dtype(np.float32)),
           _node("sum", [h], s, axis=(1,), keepdims=True), inputs=[y], outputs=[s])
    out = dce(simplify(g))
    # the sum becomes ones; one_hot stays although unused: its kernel checks the label range
    assert [n.op.name for n in out.nodes] == ["one_hot", "constant"]
    np.testing.assert_array_equal(out.evaluate(np.array([0, 2, 1, 1]))[0],
                                  g.evaluate(np.array([0, 2, 1, 1]))[0])
    with pytest.raises(ap.AprenderError, match="labels must lie in"):
        lower(out)(np.array([0, 5, 1, 1]))


def test_simplify_keeps_dtype_changing_and_negative_zero_identities() -> None:
    x = Value("x", (2,), np.float32)
    one64, nz = Value("one64", (), np.float64), Value("nz", (), np.float32)
    y, z = Value("y", (2,), np.float64), Value("z", (2,), np.float32)
    pz, w = Value("pz", (), np.float32), Value("w", (2,), np.float32)
    g = _g(_node("constant", [], one64, value=np.array(1.0)), _node("mul", [x, one64], y),
           _node("constant", [], nz, value=np.array(-0.0, np.float32)), _node("add", [x, nz], z),
           _node("constant", [], pz, value=np.array(0.0, np.float32)), _node("add", [x, pz], w),
           inputs=[x], outputs=[y, z, w])
    # x * 1.0 (f64) changes the dtype; x + 0.0 turns -0.0 into 0.0; x + (-0.0) is exact
    assert [n.op.name for n in simplify(g).nodes] == ["constant", "mul", "constant", "constant",
                                                      "add"]
    assert simplify(g).outputs[1] is x


def _mlp_loss_graph(batch: int = 4, dtype=np.float64):
    model = nn.MLP(5, 7, 3, rng=0, dtype=dtype)
    x = Tensor(np.random.default_rng(0).standard_normal((batch, 5)).astype(dtype))
    def loss(x: Tensor) -> Tensor:
        labels = np.arange(batch) % 3  # made inside: a constant of the graph
        return nn.cross_entropy(model(x), labels)

    graph = ap.trace(loss, x)
    return model, x, loss, graph


def test_fusion_groups_and_buffer_counts_on_an_mlp_training_loss() -> None:
    model, x, loss, graph = _mlp_loss_graph()
    compiled = lower(joint(graph, graph.inputs[1:]).graph)
    final = compiled.graph
    groups = [n for n in final.nodes if isinstance(n, FusedNode)]
    assert [[b.op.name for b in grp.body] for grp in groups] == [
        ["add", "relu"], ["add", "relu"], ["exp", "sub", "mul"], ["gt", "mul"], ["gt", "mul"]]
    # the backward's ReLU masks come from relu_* (relu_masks): add_* dies inside its group
    assert [len(g.outs) for g in groups] == [1, 1, 1, 1, 1]
    assert "fused[2 ops]" in str(final) and "    | relu_2" in str(final)
    assert compiled.program.plan.allocations == 9  # 12 before relu_masks and product_totals
    # the two products g @ W.T read g from Fortran-ordered buffers (no A @ B.T slow case)
    assert [order for _, _, order in compiled.program.buffers].count("F") == 2
    # bias gradients became sums over the batch axis
    assert all(n.op.name != "sum_to" for n in final.nodes)
    assert all(not isinstance(n, Node) or n.op.name != "fused" or n.outs for n in final.nodes)


def test_repeated_calls_allocate_little() -> None:
    model, x, loss, graph = _mlp_loss_graph(batch=256)
    compiled = lower(joint(graph, graph.inputs[1:]).graph)
    args = [x.data()] + [p.data() for p in model.parameters()]
    compiled(*args)
    tracemalloc.start()
    compiled(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    planned = sum(np.prod(s) * np.dtype(d).itemsize for s, d, _ in compiled.program.buffers)
    assert peak < 0.5 * planned, (peak, planned)


def test_second_order_compiles() -> None:
    w = Tensor(np.array([0.3, -0.2, 0.5])).requires_grad()

    def f(x: Tensor) -> Tensor:
        return (x * w).tanh().sum()

    x = np.array([1.0, 2.0, -1.0])
    graph = ap.trace(f, Tensor(x))
    first = joint(graph, [graph.inputs[1]]).graph  # outputs: f, df/dw
    v = Value("v", (3,), np.float64)
    dot = Graph("hvp", list(first.inputs), list(first.nodes), [first.outputs[1]])
    hv = joint(dot, [dot.inputs[1]]).graph  # d/dw sum(df/dw): seeded with ones
    got = lower(hv)(x, w.data())
    wt = Tensor(w.data()).requires_grad()
    (g,) = ap.grad((Tensor(x) * wt).tanh().sum(), [wt], create_graph=True)
    (h,) = ap.grad(g.sum(), [wt])
    np.testing.assert_allclose(got[1], h.data(), rtol=1e-12)
    assert v.name == "v"


def test_split_forward_and_backward_compose_to_the_joint_graph() -> None:
    model, x, loss, graph = _mlp_loss_graph()
    full = joint(graph, graph.inputs[1:], seed="input")
    forward, backward = split(full)
    args = [x.data()] + [p.data() for p in model.parameters()]
    fwd_out = lower(forward.graph)(*args)
    loss_value, saved = fwd_out[0], fwd_out[1:]
    grads = lower(backward)(*saved, np.array(1.0))
    expected = full.graph.evaluate(*args, np.array(1.0))
    np.testing.assert_allclose(loss_value, expected[0], rtol=1e-12)
    for a, b in zip(grads, expected[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert forward.n_saved == len(saved) and len(saved) < len(forward.graph.nodes)


def test_stages_print_each_pass_with_time_and_the_source() -> None:
    _, _, _, graph = _mlp_loss_graph()
    compiled = lower(joint(graph, graph.inputs[1:]).graph)
    names = [s.name for s in compiled.stages]
    assert names == ["input", "fold_constants", "simplify", "decompose", "lower_reductions",
                     "product_totals", "cse", "relu_masks", "dce", "fuse",
                     "schedule_collectives", "codegen"]
    text = compiled.print_stages()
    assert "# after simplify (" in text and " ms)" in text and "def build(np" in text


def test_generated_lines_carry_user_source_and_tracebacks_show_them() -> None:
    w = Tensor(np.ones((3, 2))).requires_grad()

    def f(x: Tensor) -> Tensor:
        return (x @ w).relu().sum()

    graph = ap.trace(f, Tensor(np.ones((4, 3))))
    compiled = lower(graph)
    assert "return (x @ w).relu().sum()" in compiled.source
    assert "test_compiler.py:" in compiled.source
    with pytest.raises(ExecutionError, match=r"computing matmul_0 \(recorded at .*test_compiler"
                                             r"\.py:\d+: return \(x @ w\)"):
        compiled(np.ones((4, 5)), np.ones((3, 2)))
    import linecache
    assert "dot(" in "".join(linecache.getlines(compiled.executable.filename))


def test_hostile_names_never_reach_the_source() -> None:
    evil = 'x"); __import__("os").system("echo pwned") #\n'
    x = Value(evil, (2,), np.float64)
    y = Value("y\nimport os", (2,), np.float64)
    g = Graph("g\nimport sys", [x], [Node(get_op("exp"), (x,), {}, out=y,
                                           src='evil.py:1: "\nimport os')], [y])
    compiled = lower(g)
    tree = ast.parse(compiled.source)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "__import__" not in names and "os" not in names
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert not any(isinstance(v, str) and ("os" in v or "\n" in v) for v in strings)
    for line in compiled.source.splitlines():  # names only ever appear inside comments
        code = line.split("#", 1)[0]
        assert 'system("' not in code and "import " not in code
    np.testing.assert_array_equal(compiled(np.zeros(2))[0], [1.0, 1.0])


def test_buffer_planner_reuses_dead_buffers_in_place() -> None:
    x = Value("x", (4,), np.float64)
    vals = [Value(f"t{i}", (4,), np.float64) for i in range(4)]
    s = Value("s", (), np.float64)
    g = _g(_node("exp", [x], vals[0]), _node("tanh", [vals[0]], vals[1]),
           _node("neg", [vals[1]], vals[2]), _node("exp", [vals[2]], vals[3]),
           _node("sum", [vals[3]], s, axis=None, keepdims=False), inputs=[x], outputs=[s])
    plan = plan_buffers(g)
    assert plan.allocations == 1  # the chain runs in place in one buffer
    assert {plan.buffer_of[id(v)] for v in vals} == {0}
    np.testing.assert_allclose(lower(g)(np.arange(4.0))[0], g.evaluate(np.arange(4.0))[0])


def test_fused_graphs_print_evaluate_and_refuse_json() -> None:
    _, _, _, graph = _mlp_loss_graph()
    compiled = lower(joint(graph, graph.inputs[1:]).graph)
    fused = compiled.stage("fuse")
    assert any(isinstance(n, FusedNode) for n in fused.nodes)
    from aprender.ir.serialize import IRFormatError
    with pytest.raises(IRFormatError, match="fused groups are not part of the JSON schema"):
        fused.to_json()
    data = [np.random.default_rng(i).standard_normal(v.shape) for i, v in enumerate(fused.inputs)]
    for a, b in zip(fused.evaluate(*data), compiled.stage("input").evaluate(*data), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_passes_never_fold_merge_or_drop_an_effect_op() -> None:
    """An all-reduce is a rendezvous with other ranks: fold, CSE and DCE keep every one."""
    def f(x: Tensor) -> Tensor:
        const = Tensor(np.ones(3)).all_reduce()  # constant operand: still not folded
        x.all_reduce()  # unused: still not dropped
        return x.all_reduce() + x.all_reduce() + const  # equal: still not merged

    graph = ap.trace(f, Tensor(np.zeros(3)))
    for stage in (fold_constants, cse, dce):
        graph = stage(graph)
    assert [n.op.name for n in graph.nodes].count("all_reduce") == 4
