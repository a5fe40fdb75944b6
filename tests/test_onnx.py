"""ONNX export: every op case's traced forward, run by onnxruntime, gives the eager values
(float32, 1e-5); every registered op is mapped or refused with a reason; an MLP, a CNN and a
small transformer exported with ``ap.onnx.export`` run in onnxruntime as they run eagerly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import opcases
import pytest

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.ir import Graph, Node, OpDef, Value, all_ops, get_op
from aprender.ir.onnx_export import CONVERTERS, REFUSED, OnnxExportError, sanitize
from aprender.ir.registry import Operand

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ALL_CASES, _ = opcases.all_cases()


def run(model, *inputs: np.ndarray) -> list[np.ndarray]:
    """The model's outputs in onnxruntime, fed ``inputs`` in the model's input order."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert len(names) == len(inputs), names
    return session.run(None, dict(zip(names, inputs, strict=True)))


def assert_same(got: list[np.ndarray], want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        w = w.data() if isinstance(w, Tensor) else np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def check_fn(fn, *arrays: np.ndarray, opset: int = 17) -> Graph:
    """Trace ``fn`` on ``arrays`` as tensors, export, and compare onnxruntime with eager."""
    tensors = [Tensor(a) for a in arrays]
    graph = ap.trace(fn, *tensors)
    eager = fn(*tensors)
    assert_same(run(graph.to_onnx(opset=opset), *arrays),
                list(eager) if isinstance(eager, list | tuple) else [eager])
    return graph


@pytest.mark.parametrize("opset", [17, 20])  # 18 on: reduction axes are inputs; 20: Gelu
@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_op_case_in_onnxruntime_equals_eager(case: opcases.Case, opset: int) -> None:
    fn, extra = opcases.traceable(case)
    arrays = [a.astype(np.float32) for a in opcases.inputs(case)] + list(extra)
    tensors = [Tensor(a) for a in arrays]
    graph = ap.trace(fn, *tensors)
    refused = sorted({n.op.name for n in graph.nodes} & set(REFUSED))
    if refused:  # all_reduce, dropout's random draws: refused, naming the op and why
        with pytest.raises(OnnxExportError, match=f"op {refused[0]} .*{REFUSED[refused[0]][:30]}"):
            graph.to_onnx(opset=opset)
        return
    assert_same(run(graph.to_onnx(opset=opset), *arrays), [fn(*tensors)])


def test_every_registered_op_is_mapped_or_refused_with_a_reason() -> None:
    ops = set(all_ops())
    assert set(CONVERTERS) | set(REFUSED) == ops
    assert not set(CONVERTERS) & set(REFUSED)
    assert sorted(REFUSED) == ["all_reduce", "avg_pool_grad", "conv_input_grad",
                               "conv_weight_grad", "max_pool_grad", "max_pool_select", "random"]
    x = Value("x", (2, 3), np.float32)
    for name, why in REFUSED.items():
        out = Value("y", (2, 3), np.float32)
        graph = Graph("g", [x], [Node(get_op(name), (x,), {}, out=out)], [out])
        with pytest.raises(OnnxExportError, match=f"op {name} .*cannot be exported") as info:
            graph.to_onnx()
        assert why in str(info.value)
    mystery = OpDef(name="mystery", kind="other", impl=np.negative,
                    infer=lambda v: (v.shape, v.dtype))
    out = Value("y", (2, 3), np.float32)
    with pytest.raises(OnnxExportError, match="op mystery .*no ONNX converter"):
        Graph("g", [x], [Node(mystery, (x,), {}, out=out)], [out]).to_onnx()


def test_ops_no_case_traces_in_a_forward() -> None:
    # gt, le, ne, detach, zeros_like, unslice, unindex; mixed dtypes as numpy promotes them
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    b[0, 0] = a[0, 0]
    check_fn(lambda x, y: [x > y, x <= y, x != y, x.detach() * 2.0, x.zeros_like()], a, b)
    check_fn(lambda x, i: [x * i, (i > 0).sum(), i.argmax(), x.argmin(1, keepdim=True)],
             a, np.array([[1, -2, 3, 0]] * 3))
    check_fn(lambda x: [x.unslice((5, 3, 4), (slice(None, None, -2), 1)),
                        x.unslice((2, 3, 4), (1, slice(0, 3)))], a)
    positions = np.array([2, 0, 2]), np.array([-1, 1, 3])  # repeats add up
    check_fn(lambda x, i, j: x.unindex((4, 5, 4), (Operand(1), slice(None, None, -1),
                                                   Operand(2)), (i, j)),
             rng.normal(size=(3, 5)).astype(np.float32), *positions)


def test_indexing_follows_numpy_layout() -> None:
    x = np.random.default_rng(1).normal(size=(4, 5, 6)).astype(np.float32)
    i, j = np.array([[0, -1], [2, 1]]), np.array([3, -2])
    for index in [lambda t, i, j: t[i], lambda t, i, j: t[:, j],               # Gather
                  lambda t, i, j: t[i, j], lambda t, i, j: t[1:3, i, j],       # adjacent
                  lambda t, i, j: t[i, :, j], lambda t, i, j: t[0, :, j],      # split: first
                  lambda t, i, j: t[None, ..., j], lambda t, i, j: t[::-1, j, None, 2],
                  lambda t, i, j: t[::-2, 1, -3:], lambda t, i, j: t[-1, None, 5:1:-2]]:
        check_fn(index, x, i, j)


def test_graph_to_onnx_writes_a_checked_model(tmp_path) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    graph = ap.trace(lambda x: [(x * 2.0).sum(0), x], Tensor(x))
    path = tmp_path / "g.onnx"
    graph.to_onnx(path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["x"]
    got = run(model, x)
    np.testing.assert_array_equal(got[0], [6.0, 10.0, 14.0])
    np.testing.assert_array_equal(got[1], x)  # an input returned as it is
    assert "test_onnx.py" in model.graph.node[1].doc_string  # the source line, for Netron
    with pytest.raises(OnnxExportError, match=r"opset must lie in \[17"):
        graph.to_onnx(opset=13)
    with pytest.raises(OnnxExportError, match="initializer x is f64.*f32"):
        graph.to_onnx(initializers={"x": np.zeros((2, 3))})
    with pytest.raises(OnnxExportError, match=r"no inputs named \['w'\]"):
        graph.to_onnx(initializers={"w": x})


def test_fused_groups_export_as_their_bodies() -> None:
    from aprender.compiler.passes.fuse import fuse

    x = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    fn = lambda x: ((x * 2.0).exp() + x).tanh().sum(1)  # noqa: E731
    graph = fuse(ap.trace(fn, Tensor(x)))
    assert any(n.op.name == "fused" for n in graph.nodes)
    assert_same(run(graph.to_onnx(), x), [fn(Tensor(x))])


def test_missing_onnx_names_the_extra(monkeypatch) -> None:
    graph = ap.trace(lambda x: x + 1.0, Tensor([1.0]))
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'aprender\[onnx\]'"):
        graph.to_onnx()


def test_sanitized_names() -> None:
    assert sanitize("model._items[0].weight") == "model._items.0.weight"
    assert sanitize("cfg['scale']") == "cfg.scale"
    assert sanitize("a b%c") == "a_b_c"


def _export_and_run(model, *args: np.ndarray, path=None):
    onnx_model = ap.onnx.export(model, args, path)
    want = model(*[Tensor(a) for a in args])
    assert_same(run(onnx_model, *args), [want])
    return onnx_model


def test_mlp_exports_with_parameters_as_initializers(tmp_path) -> None:
    model = nn.MLP(8, 16, 4, rng=0)
    x = np.random.default_rng(2).normal(size=(5, 8)).astype(np.float32)
    path = tmp_path / "mlp.onnx"
    exported = _export_and_run(model, x, path=path)
    assert path.exists() and onnx.load(str(path)).graph == exported.graph
    assert [i.name for i in exported.graph.input] == ["x"]
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in exported.graph.initializer}
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(stored[f"model.{name}"], p.data())
    assert [n.op_type for n in exported.graph.node][:3] == ["MatMul", "Add", "Relu"]


def test_small_cnn_exports() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, stride=2, padding=1, rng=1),
                          nn.ReLU(), nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(),
                          nn.Linear(24, 10, rng=2))
    x = np.random.default_rng(3).normal(size=(2, 1, 12, 12)).astype(np.float32)
    model(Tensor(x))  # running statistics move off their start
    model.eval()
    _export_and_run(model, x)


class TinyTransformer(nn.Module):
    """Token and position embeddings, one pre-norm causal encoder layer (GELU), a head."""

    def __init__(self, vocab: int = 11, d: int = 16, context: int = 6) -> None:
        rng = np.random.default_rng(4)
        self.tok = nn.Embedding(vocab, d, rng=rng)
        self.pos = nn.Embedding(context, d, rng=rng)
        self.block = nn.TransformerEncoderLayer(d, 2, 32, 0.1, activation="gelu",
                                                batch_first=True, norm_first=True, rng=rng)
        self.head = nn.Linear(d, vocab, rng=rng)

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        mask = np.triu(np.ones((t, t), dtype=bool), 1)
        h = self.tok(idx).add(self.pos.weight[:t])
        return self.head(self.block(h, src_mask=mask, is_causal=True))


def test_transformer_exports_in_eval_mode_and_dropout_is_refused() -> None:
    model = TinyTransformer()
    idx = np.array([[1, 4, 1, 0, 9, 10], [3, 3, 2, 7, 5, 6]])
    with pytest.raises(OnnxExportError, match="op random .*eval()"):
        ap.onnx.export(model, (idx,))
    model.eval()
    exported = _export_and_run(model, idx)
    assert {"Gather", "Softmax", "Erf"} <= {n.op_type for n in exported.graph.node}


def _example(name: str):
    """An example program loaded as a module (its models, without running it)."""
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_for_onnx", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_digits_cnn_of_the_example_exports() -> None:
    model = _example("train_cnn_digits").make_model(seed=0)
    x = np.random.default_rng(5).uniform(0, 1, size=(3, 1, 8, 8)).astype(np.float32)
    model(Tensor(x))  # running statistics move off their start
    model.eval()
    _export_and_run(model, x)


@pytest.mark.parametrize("tie", [False, True])
def test_the_character_transformer_of_the_example_exports(tie: bool) -> None:
    module = _example("char_transformer")
    model = module.CharTransformer(vocab=13, d_model=16, heads=2, layers=2, context=8,
                                   dropout=0.1, tie=tie, seed=0)
    model.eval()
    idx = np.random.default_rng(6).integers(0, 13, size=(2, 8))
    exported = _export_and_run(model, idx)
    assert {"Gather", "Softmax", "Tanh"} <= {n.op_type for n in exported.graph.node}
