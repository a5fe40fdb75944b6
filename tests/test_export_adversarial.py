"""Adversarial checks of graph export (issue 15): the standalone numpy step
(``fast.export``), ONNX (``ap.onnx.export`` / ``graph.to_onnx``) and notebook SVG display.

Each test states what the reference gives and what aprender gave when it was written; the
promise checked is the README's: a standalone step does what the compiled step does or export
refuses clearly; an ONNX model gives eager's outputs in onnxruntime or export refuses by name
(``OnnxExportError``); a notebook repr never raises and gives well-formed SVG."""

from __future__ import annotations

import enum
import runpy
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.errors import CompileError
from aprender.ir import display


def _standalone(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The exported module's namespace and its ``load()``-ed state (the module imports
    nothing of aprender; its failures are aprender's)."""
    module = runpy.run_path(str(path))
    state, _ = module["load"]()
    return module, state


# --- standalone export ----------------------------------------------------------------------


def _with_array(array, x):
    return Tensor(array) * 2.0 + Tensor(x)


def _with_name(name, x):
    return Tensor(name) * 2.0 + Tensor(x)


def _with_shape(shape, x):
    return Tensor(shape) * 2.0 + Tensor(x)


def _with_dtype(dtype, x):
    return Tensor(dtype) * 2.0 + Tensor(x)


_W = Tensor(np.array([1.0, 2.0, 3.0]))  # a captured tensor: the step has a state array


def _with_key(key, x):
    return Tensor(key) * 2.0 + Tensor(x) * _W


@pytest.mark.parametrize("fn", [_with_array, _with_name, _with_shape, _with_dtype, _with_key],
                         ids=lambda f: f.__name__)
def test_argument_named_like_a_local_of_the_generated_step(tmp_path: Path, fn) -> None:
    """Reference: the compiled call ``fn(ones, fives)`` gives 2 * 1 + 5 (* w) = [7, 12, 17] or
    [7, 7, 7]. aprender: the generated ``step(array, x, state)`` checks its arguments in
    ``for (name, shape, dtype), array in zip(ARGUMENTS, ...)`` (and ``for key, ... in
    STATE.items()``), which rebinds a parameter called ``array``, ``name``, ``shape``,
    ``dtype`` or ``key``: ``array`` becomes ``x`` (gives 15), ``shape`` the tuple (3,)
    (gives 11), ``name``/``dtype``/``key`` a string (UFuncTypeError)."""
    fast = ap.compile(fn)
    a, x = np.ones(3), np.full(3, 5.0)
    want = fast(a, x).data()
    np.testing.assert_array_equal(want, 2.0 + 5.0 * (_W.data() if fn is _with_key else 1.0))
    module, state = _standalone(fast.export(tmp_path / "step.py", a, x))
    np.testing.assert_array_equal(module["step"](a, x, state), want)


class Split(enum.Enum):
    TRAIN = "train"


@pytest.mark.parametrize("key", [Split.TRAIN, float("inf")], ids=["enum", "inf"])
def test_result_dict_keys_that_are_not_literals(tmp_path: Path, key: Any) -> None:
    """Reference: the compiled ``lambda x: {key: sum(exp(x))}`` returns ``{key: 3e}``; a
    standalone module cannot rebuild a user's Enum member, so export should refuse it with a
    ``CompileError`` (and ``inf`` should be written as ``float('inf')``). aprender: export
    writes ``{<Split.TRAIN: 'train'>: outs[0]}`` / ``{inf: outs[0]}`` into ``step``; the file
    does not even import (SyntaxError) or its step raises NameError."""
    fast = ap.compile(lambda x: {key: Tensor(x).exp().sum()})
    x = np.zeros(3)
    want = fast(x)[key].data()
    try:
        path = fast.export(tmp_path / "step.py", x)
    except CompileError:
        return  # a clear refusal at export time keeps the promise
    module, state = _standalone(path)
    got = module["step"](x, state)
    assert list(got) == [key]
    np.testing.assert_allclose(got[key], want)


def _layer(seed: int):
    w = Tensor(np.random.default_rng(seed).standard_normal((3, 3))).requires_grad()
    return lambda h: (h @ w).tanh()


_LAYERS = [_layer(0), _layer(1)]  # two closures, each over its own tensor called ``w``


def test_two_captured_tensors_with_one_python_name(tmp_path: Path) -> None:
    """Reference: the compiled step's graph names the two closure tensors ``w`` and ``w_1``
    (``fast.ir()``), and the README says the standalone state keys are the trace's names as
    ``fast.ir()`` prints them. aprender: export refuses with "two state arrays share the names
    ['w']" for a step any factory of closures (or two modules' closures) produces."""

    def step(x: np.ndarray) -> Tensor:
        h = Tensor(x)
        for layer in _LAYERS:
            h = layer(h)
        loss = h.sum()
        loss.backward()
        return loss

    fast = ap.compile(step)
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    want = fast(x).data()
    assert "w_1: f64[3,3]" in fast.ir()
    module, state = _standalone(fast.export(tmp_path / "step.py", x))
    for key in list(state):  # the gradients the compiled call accumulated: start from zero
        if key.endswith(".grad"):
            state[key] = np.zeros_like(state[key])
    np.testing.assert_allclose(module["step"](x, state), want)
    assert {"w", "w_1"} <= set(state)


# --- ONNX -------------------------------------------------------------------------------------


def _ort(model: Any, *inputs: np.ndarray) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs, strict=True)))


def _mask_product(a: Tensor, b: Tensor) -> Tensor:
    return (a > 0) * (b > 0)  # numpy: bool * bool is a bool (logical and)


def _mask_where(a: Tensor, b: Tensor) -> Tensor:
    return ap.where(a > b, a > 0, b > 0)  # bool branches


@pytest.mark.parametrize("fn", [_mask_product, _mask_where], ids=lambda f: f.__name__)
def test_boolean_masks_in_onnx(fn) -> None:
    """Reference: eager (numpy) gives a bool[2, 3] mask. aprender: ``_mask_product`` exports
    ``Mul`` on tensor(bool), which onnx.checker rejects with a raw
    ``onnx.shape_inference.InferenceError`` (not an ``OnnxExportError``; Add, Max, Min, Abs,
    MatMul, ReduceMax and Einsum of masks fail alike); ``_mask_where`` exports, but
    onnxruntime has no bool ``Where`` kernel (NOT_IMPLEMENTED) when the model runs."""
    pytest.importorskip("onnx")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2, 3)).astype(np.float32) for _ in range(2))
    want = fn(Tensor(a), Tensor(b)).data()
    try:
        model = ap.onnx.export(fn, (a, b))
    except ap.onnx.OnnxExportError:
        return  # refused by name: the promise allows it
    (got,) = _ort(model, a, b)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_batchnorm_in_training_mode_onnx_outputs() -> None:
    """Reference: eager ``bn(x)`` in training mode returns one tensor, float32[2, 3, 4, 4]
    (normalised with the batch statistics). aprender: the ONNX model has 4 outputs, the
    result followed by the running mean, running variance and num_batches_tracked updates
    under generated names (``broadcast_to_10``, ...), neither eager's outputs nor a refusal
    (the README only says to put dropout in eval() mode)."""
    pytest.importorskip("onnx")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    want = nn.BatchNorm2d(3)(Tensor(x)).data()
    try:
        model = ap.onnx.export(nn.BatchNorm2d(3), (x,))
    except ap.onnx.OnnxExportError:
        return
    got = _ort(model, x)
    assert len(got) == 1, [o.name for o in model.graph.output]
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


# --- notebook display -------------------------------------------------------------------------


@pytest.mark.skipif(display.find_renderer() is None, reason="no Graphviz `dot`, no graphviz-pure")
def test_a_character_reference_in_a_name_keeps_the_notebook_repr_working() -> None:
    """Reference: a notebook repr never raises and gives well-formed SVG (or None), whatever
    the names; the text shows the name as written. aprender: ``_quote`` leaves ``&``
    unescaped, so Graphviz decodes ``&#x1F600;`` in the dict key's name as an entity;
    graphviz-pure writes it as invalid UTF-8 (byte 0xff) and ``render_svg`` (``text=True``)
    raises UnicodeDecodeError out of ``_repr_svg_``."""
    data = {"a&#x1F600;": Tensor(np.ones(3))}
    graph = ap.trace(lambda: data["a&#x1F600;"].exp())
    svg = graph._repr_svg_()
    if svg is not None:
        texts = [t.text or "" for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
        assert any("a&#x1F600;" in t for t in texts), texts
