"""ONNX export: ``to_onnx(graph)`` writes a graph as an ONNX model (opset 17 or later).

Every registered op has an entry in ``CONVERTERS`` (op name -> a function that emits the ONNX
nodes computing it) or in ``REFUSED`` (op name -> why it cannot be exported: collectives, the
Philox random stream, backward-only ops). Graph inputs become ONNX graph inputs, or
initializers when their values are given (a module's parameters); ``constant`` nodes become
initializers. ONNX names are the IR value names (sanitised), each node's ``doc_string`` is the
user's source line, and every IR value has its shape in ``value_info``, so a viewer such as
Netron shows the graph as ``print(graph)`` does.

Numpy's semantics are kept exactly where ONNX differs: inputs are cast to the dtype numpy
promotes to (ONNX ops take one type), reductions over no axes reduce nothing, index arrays
follow numpy's advanced-indexing layout, pooling pads each side so that exactly the IR's
windows exist. What ONNX cannot check is not checked: ``one_hot`` and ``class_targets`` give
zero rows for out-of-range labels instead of raising, and ``binary_cross_entropy`` does not
check that its inputs lie in [0, 1].
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AprenderError
from .graph import FusedNode, Graph, Node, Value, short_src, type_str
from .ops.conv import pool_divisor, pool_out_size
from .ops.elementwise import GELU_C, GELU_K, SQRT_HALF
from .registry import Operand

MIN_OPSET = 17
_INT64_MIN = -(2 ** 63)


class OnnxExportError(AprenderError, NotImplementedError):
    """A graph holds an op that has no ONNX form (see ``REFUSED``), or bad export arguments."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'aprender[onnx]'") \
            from None
    return onnx


def sanitize(name: str) -> str:
    """An IR name as an ONNX name: ``model._items[0].weight`` -> ``model._items.0.weight``,
    other characters outside ``[A-Za-z0-9_.]`` become ``_``."""
    name = re.sub(r"\[['\"]?([^\]'\"]*)['\"]?\]", r".\1", name)
    name = re.sub(r"[^A-Za-z0-9_.]", "_", name)
    return name or "value"


class Emitter:
    """Collects the ONNX nodes and initializers of one graph; converters call its methods."""

    def __init__(self, opset: int) -> None:
        self.onnx = _onnx()
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.used: set[str] = set()
        self.consts: dict[tuple, str] = {}
        #: the IR node being converted: its output's name (helper values are named after it)
        #: and its source line (each ONNX node's doc_string)
        self.scope = ""
        self.src: str | None = None

    def fresh(self, base: str) -> str:
        """A name not used yet, ``base`` if free."""
        name, k = sanitize(base), 1
        candidate = name
        while candidate in self.used:
            candidate, k = f"{name}_{k}", k + 1
        self.used.add(candidate)
        return candidate

    def helper_name(self, kind: str) -> str:
        """A fresh name for a value made while converting the current node."""
        return self.fresh(f"{self.scope}_{kind}" if self.scope else kind)

    def add(self, op_type: str, inputs: Sequence[str], out: str | None = None,
            **attrs: Any) -> str:
        """Emit one node; returns its output's name (``out``, or a fresh one)."""
        out = out or self.helper_name(op_type.lower())
        node = self.onnx.helper.make_node(op_type, list(inputs), [out], name=out,
                                          doc_string=self.src or "",
                                          **{k: v for k, v in attrs.items() if v is not None})
        self.nodes.append(node)
        return out

    def initializer(self, name: str, array: np.ndarray) -> str:
        """Store ``array`` under ``name`` (already reserved)."""
        self.initializers.append(self.onnx.numpy_helper.from_array(
            np.array(array, order="C"), name))
        return name

    def const(self, value: Any, dtype: Any = np.int64, kind: str = "const") -> str:
        """A small constant (shapes, axes, scalars) as a shared initializer; ``kind`` names
        it."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        name = self.consts.get(key)
        if name is None:
            name = self.consts[key] = self.initializer(self.helper_name(kind), array)
        return name

    def cast(self, name: str, src: Any, dst: Any) -> str:
        """``name`` cast from ``src`` to ``dst`` (itself when they agree)."""
        if np.dtype(src) == np.dtype(dst):
            return name
        return self.add("Cast", [name], to=onnx_type(dst))

    def reduce(self, op_type: str, x: str, axes: tuple[int, ...] | None, keepdims: bool,
               out: str | None = None) -> str:
        """``op_type`` over ``axes`` (None: all); axes are an input from ReduceSum opset 13
        and the other reductions' opset 18, an attribute before."""
        if axes is None:
            return self.add(op_type, [x], out, keepdims=int(keepdims))
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.add(op_type, [x, self.const(list(axes), kind="axes")], out,
                            keepdims=int(keepdims))
        return self.add(op_type, [x], out, axes=list(axes), keepdims=int(keepdims))

    def reshape(self, x: str, shape: Sequence[int], out: str | None = None) -> str:
        """``x`` reshaped to the static ``shape`` (zeros are sizes, not copies)."""
        allow = 1 if 0 in shape else None
        return self.add("Reshape", [x, self.const(list(shape), kind="shape")], out,
                        allowzero=allow)

    def slice(self, x: str, starts: list[int], ends: list[int], axes: list[int],
              steps: list[int], out: str | None = None) -> str:
        """``x`` sliced as numpy's ``start:end:step`` along each of ``axes``."""
        bounds = [self.const(v, kind=k) for v, k in ((starts, "starts"), (ends, "ends"),
                                                     (axes, "axes"), (steps, "steps"))]
        return self.add("Slice", [x, *bounds], out)

    def unsqueeze(self, x: str, axes: Sequence[int], out: str | None = None) -> str:
        """``x`` with new size-1 axes at ``axes``."""
        return self.add("Unsqueeze", [x, self.const(list(axes), kind="axes")], out)

    def zeros(self, shape: Sequence[int], dtype: Any, out: str | None = None) -> str:
        """Zeros of a static shape, made by ``ConstantOfShape`` (no stored array)."""
        value = self.onnx.numpy_helper.from_array(np.zeros(1, dtype=dtype))
        return self.add("ConstantOfShape", [self.const(list(shape), kind="shape")], out,
                        value=value)


def onnx_type(dtype: Any) -> int:
    """The ONNX element type of a numpy dtype."""
    return _onnx().helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


Converter = Callable[[Emitter, Node, list[str], str], str]


# --- element-wise ---------------------------------------------------------------------------


def _promoted(e: Emitter, node: Node, xs: list[str], dtype: Any = None) -> list[str]:
    """The inputs cast to ``dtype`` (default: the output's): numpy promotes, ONNX does not."""
    dtype = node.out.dtype if dtype is None else dtype
    return [e.cast(x, v.dtype, dtype) for x, v in zip(xs, node.inputs, strict=True)]


def _simple(op_type: str, **attrs: Any) -> Converter:
    """One ONNX op of the same inputs, cast to the output's dtype."""
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        return e.add(op_type, _promoted(e, node, xs), out, **attrs)
    return convert


def _float_op(op_type: str) -> Converter:
    """A float-only ONNX op; an integer result (numpy kept ints) goes through float64."""
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        dtype = node.out.dtype
        if dtype.kind == "f":
            return e.add(op_type, _promoted(e, node, xs), out)
        y = e.add(op_type, _promoted(e, node, xs, np.float64))
        return e.add("Cast", [y], out, to=onnx_type(dtype))
    return convert


def _compare(op_type: str, negate: bool = False) -> Converter:
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        common = np.result_type(*(v.dtype for v in node.inputs))
        if common == np.bool_ and op_type != "Equal":
            common = np.dtype(np.int32)  # ONNX orders numbers, not bools
        a, b = _promoted(e, node, xs, common)
        if negate:
            return e.add("Not", [e.add(op_type, [a, b])], out)
        return e.add(op_type, [a, b], out)
    return convert


def _pow(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    (x,) = _promoted(e, node, xs)
    return e.add("Pow", [x, e.const(node.attrs["exponent"], node.out.dtype)], out)


def _zeros_like(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.zeros(node.out.shape, node.out.dtype, out)


def _round(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    dtype, decimals = node.out.dtype, node.attrs["decimals"]
    work = dtype if dtype.kind == "f" else np.dtype(np.float64)  # ONNX rounds floats only
    (x,) = _promoted(e, node, xs, work)
    if decimals:  # numpy's way: scale, round half to even, scale back
        scale = e.const(10.0 ** decimals, work)
        x = e.add("Mul", [x, scale])
    y = e.add("Round", [x], out if work == dtype and not decimals else None)
    if decimals:
        y = e.add("Div", [y, scale], out if work == dtype else None)
    return y if work == dtype else e.add("Cast", [y], out, to=onnx_type(dtype))


def _clip(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    (x,) = _promoted(e, node, xs)
    lo, hi = node.attrs["lo"], node.attrs["hi"]
    bounds = ["" if v is None else e.const(v, node.out.dtype) for v in (lo, hi)]
    return e.add("Clip", [x, *bounds], out)  # like np.clip, max wins when min > max


def _square(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    (x,) = _promoted(e, node, xs)
    return e.add("Mul", [x, x], out)


def _rsqrt(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    (x,) = _promoted(e, node, xs)
    return e.add("Reciprocal", [e.add("Sqrt", [x])], out)


def _isfloat(op_type: str) -> Converter:
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        x, dtype = xs[0], node.inputs[0].dtype
        if dtype.kind != "f":  # integers are never nan or inf
            x = e.cast(x, dtype, np.float64)
        return e.add(op_type, [x], out)
    return convert


def _leaky_relu(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.add("LeakyRelu", _promoted(e, node, xs), out, alpha=float(node.attrs["slope"]))


def _elu(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.add("Elu", _promoted(e, node, xs), out, alpha=float(node.attrs["alpha"]))


def _softplus(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    dtype, beta, threshold = node.out.dtype, node.attrs["beta"], node.attrs["threshold"]
    (x,) = _promoted(e, node, xs)
    z = x if beta == 1 else e.add("Mul", [x, e.const(beta, dtype)])
    last = out if threshold is None else None
    y = e.add("Softplus", [z], last if beta == 1 else None)
    if beta != 1:
        y = e.add("Div", [y, e.const(beta, dtype)], last)
    if threshold is None:
        return y
    linear = e.add("Greater", [z, e.const(threshold, dtype)])
    return e.add("Where", [linear, x, y], out)


def _silu(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    (x,) = _promoted(e, node, xs)
    return e.add("Mul", [x, e.add("Sigmoid", [x])], out)


def _gelu(approximate: str) -> Converter:
    """GELU: the ``Gelu`` op from opset 20, else its formula (tanh form, or erf form)."""
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        dtype = node.out.dtype
        (x,) = _promoted(e, node, xs)
        if e.opset >= 20:
            return e.add("Gelu", [x], out, approximate=approximate)
        if approximate == "tanh":  # 0.5 x (1 + tanh(k (x + c x^3)))
            cube = e.add("Mul", [e.add("Mul", [x, x]), x])
            inner = e.add("Add", [x, e.add("Mul", [cube, e.const(GELU_C, dtype)])])
            t = e.add("Tanh", [e.add("Mul", [inner, e.const(GELU_K, dtype)])])
        else:  # 0.5 x (1 + erf(x / sqrt 2))
            t = e.add("Erf", [e.add("Mul", [x, e.const(SQRT_HALF, dtype)])])
        half = e.add("Mul", [x, e.const(0.5, dtype)])
        return e.add("Mul", [half, e.add("Add", [t, e.const(1.0, dtype)])], out)
    return convert


def _where(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    cond = e.cast(xs[0], node.inputs[0].dtype, np.bool_)
    a, b = (e.cast(x, v.dtype, node.out.dtype) for x, v in zip(xs[1:], node.inputs[1:],
                                                                 strict=True))
    return e.add("Where", [cond, a, b], out)


def _astype(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.add("Cast", xs, out, to=onnx_type(node.attrs["dtype"]))


def _binary_cross_entropy(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    # (y - 1) max(log(1 - x), -100) - y max(log x, -100)
    dtype = node.out.dtype
    x, y = _promoted(e, node, xs)
    floor, one = e.const(-100.0, dtype), e.const(1.0, dtype)
    log_x = e.add("Max", [e.add("Log", [x]), floor])
    log_1mx = e.add("Max", [e.add("Log", [e.add("Sub", [one, x])]), floor])
    first = e.add("Mul", [e.add("Sub", [y, one]), log_1mx])
    return e.add("Sub", [first, e.add("Mul", [y, log_x])], out)


# --- reductions -----------------------------------------------------------------------------


def _axes(node: Node) -> tuple[int, ...] | None:
    axis = node.attrs["axis"]
    return None if axis is None else tuple(int(a) for a in axis)


def _reduction(op_type: str) -> Converter:
    """A reduction over ``axis`` (None: all; ``()``: none) in the output's dtype."""
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        (x,) = _promoted(e, node, xs)
        axes = _axes(node)
        if axes == ():
            return e.add("Identity", [x], out)
        return e.reduce(op_type, x, axes, node.attrs["keepdims"], out)
    return convert


def _bool_reduction(op_type: str) -> Converter:
    """``any``/``all``: nonzero as int32, its max/min, back to bool."""
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        nonzero = e.cast(xs[0], node.inputs[0].dtype, np.bool_)
        axes = _axes(node)
        if axes == ():
            return e.add("Identity", [nonzero], out)
        y = e.reduce(op_type, e.cast(nonzero, np.bool_, np.int32), axes, node.attrs["keepdims"])
        return e.add("Cast", [y], out, to=onnx_type(np.bool_))
    return convert


def _arg_reduction(op_type: str) -> Converter:
    """``argmax``/``argmin``: the first extreme (int64, numpy's intp); axis None: of the
    flattened values."""
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        axis, keepdims = node.attrs["axis"], node.attrs["keepdims"]
        x = e.cast(xs[0], np.bool_, np.int32) if node.inputs[0].dtype == np.bool_ else xs[0]
        if axis is None:
            flat = e.add(op_type, [e.reshape(x, [-1])], axis=0, keepdims=0)
            return e.reshape(flat, node.out.shape, out)
        return e.add(op_type, [x], out, axis=int(axis), keepdims=int(keepdims))
    return convert


def _count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    return math.prod(shape[a] for a in (range(len(shape)) if axes is None else axes))


def _variance(e: Emitter, node: Node, xs: list[str], out: str | None) -> str:
    """sum (x - mean)^2 / (N - correction) over the node's axes."""
    (x,) = _promoted(e, node, xs)
    axes = _axes(node)
    centred = e.add("Sub", [x, e.reduce("ReduceMean", x, axes, True)])
    total = e.reduce("ReduceSum", e.add("Mul", [centred, centred]), axes, node.attrs["keepdims"])
    dof = _count(node.inputs[0].shape, axes) - node.attrs["correction"]
    return e.add("Div", [total, e.const(dof, node.out.dtype)], out)


def _std(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.add("Sqrt", [_variance(e, node, xs, None)], out)


def _logsumexp(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    # log(sum(exp(x - top))) + top, top the maximum where finite (else 0), as the kernel
    (x,) = _promoted(e, node, xs)
    axes, dtype = _axes(node), node.out.dtype
    top = e.reduce("ReduceMax", x, axes, True)
    bad = e.add("Or", [e.add("IsInf", [top]), e.add("IsNaN", [top])])
    top = e.add("Where", [bad, e.const(0.0, dtype), top])
    total = e.reduce("ReduceSum", e.add("Exp", [e.add("Sub", [x, top])]), axes, True)
    y = e.add("Add", [e.add("Log", [total]), top])
    return e.reshape(y, node.out.shape, out)


def _cumsum(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    (x,) = _promoted(e, node, xs)
    return e.add("CumSum", [x, e.const(node.attrs["axis"])], out)


def _sum_to(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    src, shape = node.inputs[0].shape, tuple(node.attrs["shape"])
    lead = len(src) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and src[lead + i] != 1)
    x = xs[0]
    if axes:
        x = e.reduce("ReduceSum", x, axes, True)
    return e.reshape(x, shape, out)


def _softmax(op_type: str) -> Converter:
    """Softmax or LogSoftmax along the axis (a 0-d value: as one element of a vector)."""
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        (x,) = _promoted(e, node, xs)
        if node.attrs["axis"] is None:
            return e.reshape(e.add(op_type, [e.reshape(x, [1])], axis=0), (), out)
        return e.add(op_type, [x], out, axis=int(node.attrs["axis"]))
    return convert


def _cross_entropy(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    z, t = _promoted(e, node, xs)
    log_probs = e.add("LogSoftmax", [z], axis=1)
    return e.add("Neg", [e.reduce("ReduceSum", e.add("Mul", [log_probs, t]), (1,), False)],
                 out)


def _hits(e: Emitter, labels: str, dtype: Any, num_classes: int, axis: int, ndim: int,
          ignore_index: int | None) -> str:
    """One-hot rows of integer ``labels`` along a new ``axis`` (zero for ``ignore_index``)."""
    expanded = e.unsqueeze(e.cast(labels, dtype, np.int64), [axis])
    classes = e.const(np.arange(num_classes).reshape((num_classes,) + (1,) * (ndim - axis)))
    hits = e.add("Equal", [expanded, classes])
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        kept = e.add("Not", [e.add("Equal", [expanded, e.const(ignore_index)])])
        hits = e.add("And", [hits, kept])
    return hits


def _one_hot(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    ndim = len(node.inputs[0].shape)
    hits = _hits(e, xs[0], node.inputs[0].dtype, node.attrs["num_classes"], ndim, ndim, None)
    return e.add("Cast", [hits], out, to=onnx_type(node.attrs["dtype"]))


def _class_targets(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    at = node.attrs
    hits = _hits(e, xs[0], node.inputs[0].dtype, at["num_classes"], at["axis"],
                 len(node.inputs[0].shape), at["ignore_index"])
    return e.add("Cast", [hits], out, to=onnx_type(at["dtype"]))


# --- convolution and pooling ----------------------------------------------------------------


def _conv(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    at = node.attrs
    pads = [lo for lo, _ in at["padding"]] + [hi for _, hi in at["padding"]]
    return e.add("Conv", _promoted(e, node, xs), out, strides=list(at["stride"]), pads=pads,
                 dilations=list(at["dilation"]), group=int(at["groups"]),
                 kernel_shape=list(node.inputs[1].shape[2:]))


def _pool_pads(size: tuple[int, ...], kernel: tuple, stride: tuple, padding: tuple,
               dilation: tuple, ceil_mode: bool) -> tuple[list[int], tuple[int, ...]]:
    """ONNX ``pads`` that hold exactly the IR's windows (PyTorch's ceil_mode rule made explicit:
    extra padding on the high side, no ceil mode) and the output's spatial shape."""
    lo, hi, out = [], [], []
    for n, k, s, p, d in zip(size, kernel, stride, padding, dilation, strict=True):
        o = pool_out_size(n, k, s, p, d, ceil_mode)
        out.append(o)
        lo.append(p)
        hi.append(max((o - 1) * s + d * (k - 1) + 1 - n - p, 0))
    return lo + hi, tuple(out)


def _max_pool(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    at = node.attrs
    pads, _ = _pool_pads(node.inputs[0].shape[2:], at["kernel_size"], at["stride"],
                         at["padding"], at["dilation"], at["ceil_mode"])
    return e.add("MaxPool", xs, out, kernel_shape=list(at["kernel_size"]),
                 strides=list(at["stride"]), pads=pads, dilations=list(at["dilation"]))


def _avg_pool(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    # window sums (AveragePool counting the padding, times the window size), then PyTorch's
    # divisor per output position, as the kernel computes it
    at, dtype = node.attrs, node.out.dtype
    size, kernel = node.inputs[0].shape[2:], at["kernel_size"]
    ones = (1,) * len(kernel)
    pads, spatial = _pool_pads(size, kernel, at["stride"], at["padding"], ones, at["ceil_mode"])
    mean = e.add("AveragePool", _promoted(e, node, xs), kernel_shape=list(kernel),
                 strides=list(at["stride"]), pads=pads, count_include_pad=1)
    total = e.add("Mul", [mean, e.const(math.prod(kernel), dtype)])
    inv = pool_divisor(size, kernel, at["stride"], at["padding"], at["ceil_mode"],
                   at["count_include_pad"], at["divisor_override"], spatial, dtype)
    return e.add("Mul", [total, e.const(inv, dtype)], out)


# --- matrix products ------------------------------------------------------------------------


def _einsum(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.add("Einsum", _promoted(e, node, xs), out, equation=node.attrs["equation"])


# --- shapes ---------------------------------------------------------------------------------


def _constant(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.initializer(out, np.asarray(node.attrs["value"], dtype=node.out.dtype))


def _reshape(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.reshape(xs[0], node.out.shape, out)


def _identity(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.add("Identity", xs, out)


def _transpose(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.add("Transpose", xs, out, perm=[int(a) for a in node.attrs["axes"]])


def _broadcast_to(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.add("Expand", [xs[0], e.const(list(node.out.shape))], out)


def _items(index: tuple, shape: tuple[int, ...]) -> list:
    """The index with ``...`` expanded and trailing full slices added: one item per dimension
    (ints, slices, ``Operand``s), plus the ``None``s in place."""
    consuming = sum(1 for i in index if i is not None and i is not Ellipsis)
    items: list = []
    for item in index:
        if item is Ellipsis:
            items.extend([slice(None)] * (len(shape) - consuming))
        else:
            items.append(item)
    if Ellipsis not in index:
        items.extend([slice(None)] * (len(shape) - consuming))
    return items


def _bounds(item: slice, size: int) -> tuple[int, int, int]:
    """ONNX ``Slice`` start, end and step of a slice of a dimension of ``size``."""
    start, stop, step = item.indices(size)
    if step < 0 and stop < 0:  # before the first element: ONNX reads -1 as the last one
        stop = _INT64_MIN
    return start, stop, step


def _apply_slices(e: Emitter, x: str, items: list, shape: tuple[int, ...]) -> tuple[str, list]:
    """``x`` with the slices (and ints, as one-element slices) of ``items`` applied; returns it
    and the sizes of its dimensions."""
    starts, ends, axes, steps, sizes = [], [], [], [], []
    dim = 0
    for item in items:
        if item is None:
            continue
        size = shape[dim]
        if isinstance(item, slice):
            start, stop, step = _bounds(item, size)
            length = len(range(*item.indices(size)))
            if (start, step, length) != (0, 1, size):
                starts.append(start), ends.append(stop), axes.append(dim), steps.append(step)
        elif isinstance(item, int | np.integer):
            i = int(item) % size
            starts.append(i), ends.append(i + 1), axes.append(dim), steps.append(1)
            length = 1
        else:
            length = size
        sizes.append(length)
        dim += 1
    if axes:
        x = e.slice(x, starts, ends, axes, steps)
    return x, sizes


def _getitem(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    # slices and ints by one Slice; dropped (ints) and new (None) axes by a Reshape
    shape = node.inputs[0].shape
    y, sizes = _apply_slices(e, xs[0], _items(node.attrs["index"], shape), shape)
    if tuple(sizes) == node.out.shape:
        return e.add("Identity", [y], out)
    return e.reshape(y, node.out.shape, out)


def _is_advanced(item: Any) -> bool:
    return type(item) is Operand or type(item) is int


def _advanced(e: Emitter, data: str, shape: tuple[int, ...], index: tuple,
              arrays: Sequence[tuple[str, Value]], out_shape: tuple[int, ...], out: str) -> str:
    """``data[index]`` with numpy's integer-array indexing: ``Operand(k)`` items stand for
    ``arrays[k - 1]`` (name, value). Slices first; one array alone: ``Gather``; else (ints
    count as 0-d arrays) ``GatherND`` on the indexed dimensions moved to the front, whose
    broadcast index dimensions then go where numpy puts them: in place of the indexed ones
    when those are adjacent in the index, else first. ``None`` axes come from the reshape."""
    items = _items(index, shape)
    x, sizes = _apply_slices(
        e, data, [slice(None) if type(i) is int else i for i in items], shape)
    consuming = [i for i in items if i is not None]
    advanced = [d for d, i in enumerate(consuming) if _is_advanced(i)]
    basic = [d for d, i in enumerate(consuming) if not _is_advanced(i)]
    if len(advanced) == 1 and type(consuming[advanced[0]]) is Operand:
        name, value = arrays[consuming[advanced[0]].position - 1]
        y = e.add("Gather", [x, e.cast(name, value.dtype, np.int64)], axis=advanced[0])
        return e.reshape(y, out_shape, out)
    columns, shapes = [], []
    for d in advanced:
        item = consuming[d]
        if type(item) is int:
            name, s = e.const(item % sizes[d]), ()
        else:  # negative indices count from the end, as in numpy
            name, value = arrays[item.position - 1]
            name, s = e.cast(name, value.dtype, np.int64), value.shape
            negative = e.add("Less", [name, e.const(0)])
            name = e.add("Where", [negative, e.add("Add", [name, e.const(sizes[d])]), name])
        columns.append(name)
        shapes.append(tuple(s))
    batch = tuple(np.broadcast_shapes(*shapes))
    columns = [e.unsqueeze(c if s == batch else e.add("Expand", [c, e.const(list(batch))]),
                           [-1]) for c, s in zip(columns, shapes, strict=True)]
    stacked = columns[0] if len(columns) == 1 else e.add("Concat", columns, axis=-1)
    if advanced + basic != list(range(len(sizes))):
        x = e.add("Transpose", [x], perm=advanced + basic)
    y = e.add("GatherND", [x, stacked])
    positions = [k for k, i in enumerate(items) if _is_advanced(i)]
    if positions[-1] - positions[0] + 1 == len(positions):  # adjacent: in place
        nb, before = len(batch), sum(1 for d in basic if d < advanced[0])
        perm = list(range(nb, nb + before)) + list(range(nb)) + list(
            range(nb + before, nb + len(basic)))
        if perm != list(range(len(perm))):
            y = e.add("Transpose", [y], perm=perm)
    return e.reshape(y, out_shape, out)


def _index(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    arrays = list(zip(xs[1:], node.inputs[1:], strict=True))
    return _advanced(e, xs[0], node.inputs[0].shape, node.attrs["index"], arrays,
                     node.out.shape, out)


def _scatter_flat(e: Emitter, node: Node, x: str, positions: str, reduction: str | None,
                  out: str) -> str:
    """Zeros of the output's shape with ``x`` written (or added) at flat ``positions``."""
    size = math.prod(node.out.shape)
    zeros = e.zeros([size], node.out.dtype)
    flat = e.add("ScatterElements", [zeros, e.reshape(positions, [-1]), e.reshape(x, [-1])],
                 axis=0, reduction=reduction)
    return e.reshape(flat, node.out.shape, out)


def _unslice(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    shape, index = tuple(node.attrs["shape"]), node.attrs["index"]
    items = [i for i in _items(index, shape) if i is not None]
    bounds = [_bounds(i, n) if isinstance(i, slice) else (int(i) % n, int(i) % n + 1, 1)
              for i, n in zip(items, shape, strict=True)]
    if all(step == 1 for _, _, step in bounds):  # a block: Pad
        sizes = [max(stop - start, 0) for start, stop, _ in bounds]
        x = e.reshape(xs[0], sizes)
        before = [start for start, _, _ in bounds]
        after = [n - start - k for n, start, k in zip(shape, before, sizes, strict=True)]
        return e.add("Pad", [x, e.const(before + after)], out, mode="constant")
    positions = np.arange(math.prod(shape)).reshape(shape)[index]
    return _scatter_flat(e, node, xs[0], e.const(positions), None, out)


def _unindex(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    # the flat positions are the index applied to 0..n-1 laid out in the shape; then one
    # ScatterElements adds x there (repeats accumulate)
    shape = tuple(node.attrs["shape"])
    flat = e.add("Range", [e.const(0), e.const(math.prod(shape)), e.const(1)])
    arrays = list(zip(xs[1:], node.inputs[1:], strict=True))
    positions = _advanced(e, e.reshape(flat, shape), shape, node.attrs["index"], arrays,
                          node.inputs[0].shape, e.helper_name("positions"))
    return _scatter_flat(e, node, xs[0], positions, "add", out)


def _concat(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    return e.add("Concat", _promoted(e, node, xs), out, axis=int(node.attrs["axis"]))


def _stack(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    axis = int(node.attrs["axis"])
    parts = [e.unsqueeze(x, [axis]) for x in _promoted(e, node, xs)]
    return e.add("Concat", parts, out, axis=axis)


def _flip(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    dims = [int(d) for d in node.attrs["dims"]]
    if not dims or not node.inputs[0].shape:
        return e.add("Identity", xs, out)
    k = len(dims)
    return e.slice(xs[0], [-1] * k, [_INT64_MIN] * k, dims, [-1] * k, out)


def _roll(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    shape, shifts, dims = node.inputs[0].shape, node.attrs["shifts"], node.attrs["dims"]
    x = xs[0]
    if dims is None:  # over the flattened values
        x, shape, dims = e.reshape(x, [-1]), (math.prod(shape),), (0,)
    for shift, d in zip(shifts, dims, strict=True):
        n = shape[d]
        s = int(shift) % n if n else 0
        if s:
            tail = e.slice(x, [n - s], [n], [d], [1])
            head = e.slice(x, [0], [n - s], [d], [1])
            x = e.add("Concat", [tail, head], axis=d)
    return e.reshape(x, node.out.shape, out)


def _repeat(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    sizes, shape = list(node.attrs["sizes"]), node.inputs[0].shape
    x = xs[0]
    if len(sizes) > len(shape):
        x = e.reshape(x, (1,) * (len(sizes) - len(shape)) + tuple(shape))
    return e.add("Tile", [x, e.const(sizes)], out)


def _triangle(upper: int) -> Converter:
    def convert(e: Emitter, node: Node, xs: list[str], out: str) -> str:
        return e.add("Trilu", [xs[0], e.const(node.attrs["diagonal"])], out, upper=upper)
    return convert


def _pad(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    widths = node.attrs["widths"]
    pads = [int(b) for b, _ in widths] + [int(a) for _, a in widths]
    value = e.const(node.attrs["value"], node.out.dtype)
    return e.add("Pad", [xs[0], e.const(pads), value], out, mode="constant")


def _gather(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    if not node.inputs[1].shape:  # a 0-d index picks the 0-d input
        return e.add("Identity", [xs[0]], out)
    index = e.cast(xs[1], node.inputs[1].dtype, np.int64)
    return e.add("GatherElements", [xs[0], index], out, axis=int(node.attrs["dim"]))


def _scatter_add(e: Emitter, node: Node, xs: list[str], out: str) -> str:
    (x, index, src), (_, iv, sv) = xs, node.inputs
    if not iv.shape:  # 0-d: the value plus src
        return e.add("Add", [x, src], out)
    if tuple(sv.shape) != tuple(iv.shape):  # PyTorch reads only src's leading block
        n = len(iv.shape)
        src = e.slice(src, [0] * n, list(iv.shape), list(range(n)), [1] * n)
    index = e.cast(index, iv.dtype, np.int64)
    return e.add("ScatterElements", [x, index, src], out, axis=int(node.attrs["dim"]),
                 reduction="add")


CONVERTERS: dict[str, Converter] = {
    # element-wise
    "add": _simple("Add"), "sub": _simple("Sub"), "mul": _simple("Mul"), "div": _simple("Div"),
    "power": _simple("Pow"), "maximum": _simple("Max"), "minimum": _simple("Min"),
    "neg": _simple("Neg"), "exp": _float_op("Exp"), "log": _float_op("Log"),
    "sqrt": _float_op("Sqrt"), "zeros_like": _zeros_like, "pow": _pow, "abs": _simple("Abs"),
    "sign": _simple("Sign"), "floor": _float_op("Floor"), "round": _round, "clip": _clip,
    "sin": _float_op("Sin"), "cos": _float_op("Cos"), "square": _square, "rsqrt": _rsqrt,
    "erf": _float_op("Erf"), "isnan": _isfloat("IsNaN"), "isinf": _isfloat("IsInf"),
    "relu": _simple("Relu"), "leaky_relu": _leaky_relu, "sigmoid": _float_op("Sigmoid"),
    "softplus": _softplus, "tanh": _float_op("Tanh"), "gelu": _gelu("tanh"),
    "gelu_erf": _gelu("none"), "silu": _silu, "elu": _elu,
    "gt": _compare("Greater"), "ge": _compare("GreaterOrEqual"), "lt": _compare("Less"),
    "le": _compare("LessOrEqual"), "eq": _compare("Equal"), "ne": _compare("Equal", True),
    "where": _where, "astype": _astype, "binary_cross_entropy": _binary_cross_entropy,
    # reductions
    "sum": _reduction("ReduceSum"), "mean": _reduction("ReduceMean"),
    "max": _reduction("ReduceMax"), "min": _reduction("ReduceMin"),
    "prod": _reduction("ReduceProd"), "argmax": _arg_reduction("ArgMax"),
    "argmin": _arg_reduction("ArgMin"), "var": _variance, "std": _std, "logsumexp": _logsumexp,
    "any": _bool_reduction("ReduceMax"), "all": _bool_reduction("ReduceMin"),
    "cumsum": _cumsum, "sum_to": _sum_to, "softmax": _softmax("Softmax"),
    "log_softmax": _softmax("LogSoftmax"), "cross_entropy": _cross_entropy,
    "class_targets": _class_targets,
    # convolution, pooling, products
    "conv": _conv, "max_pool": _max_pool, "avg_pool": _avg_pool, "matmul": _simple("MatMul"),
    "einsum": _einsum,
    # shapes and indexing
    "reshape": _reshape, "transpose": _transpose, "detach": _identity,
    "broadcast_to": _broadcast_to, "getitem": _getitem, "unslice": _unslice, "index": _index,
    "unindex": _unindex, "concat": _concat, "stack": _stack, "one_hot": _one_hot,
    "contiguous": _identity, "flip": _flip, "roll": _roll, "repeat": _repeat,
    "tril": _triangle(0), "triu": _triangle(1), "pad": _pad, "gather": _gather,
    "scatter_add": _scatter_add, "constant": _constant,
}

_BACKWARD = ("a backward-only op of a training step; export the forward graph (ap.trace or "
             "ap.onnx.export of the model), not a compiled step")

#: ops with no ONNX form, and why
REFUSED: dict[str, str] = {
    "all_reduce": "an MPI collective across ranks; an exported model runs in one process "
                  "(export the module inside DistributedDataParallel, ddp.module)",
    "random": "draws from aprender's Philox stream, which ONNX's RandomUniform/RandomNormal "
              "cannot reproduce; put dropout layers in eval() mode before exporting",
    "conv_input_grad": _BACKWARD, "conv_weight_grad": _BACKWARD, "max_pool_grad": _BACKWARD,
    "max_pool_select": _BACKWARD, "avg_pool_grad": _BACKWARD,
}


# --- the graph ------------------------------------------------------------------------------


def _value_info(onnx: Any, name: str, value: Value) -> Any:
    return onnx.helper.make_tensor_value_info(name, onnx_type(value.dtype), list(value.shape))


def _flat_nodes(nodes: list[Node]) -> list[Node]:
    """The nodes with fused groups replaced by their bodies."""
    out: list[Node] = []
    for node in nodes:
        out.extend(_flat_nodes(node.body) if isinstance(node, FusedNode) else [node])
    return out


def _refusal(graph: Graph, node: Node) -> OnnxExportError:
    name = node.op.name
    why = REFUSED.get(name, "it has no ONNX converter yet (add one to CONVERTERS in "
                            "ir/onnx_export.py)")
    where = f" at {short_src(node.src)}" if node.src else ""
    return OnnxExportError(f"to_onnx: graph {graph.name}: op {name} "
                           f"({graph.node_line(node)}){where} cannot be exported to ONNX: {why}")


#: numpy's arithmetic on two bool arrays is logic; ONNX's arithmetic has no bool kernels
_BOOL_LOGIC = {"add": "Or", "mul": "And", "maximum": "Or", "minimum": "And"}
#: ops whose bool form ONNX lacks and numpy has (refused by name)
_BOOL_REFUSED = {"abs", "matmul", "einsum", "max", "min", "amax", "amin", "prod",
                 "power", "clip"}


def _bool_values(e: Emitter, node: Node, xs: list[str], out: str) -> str | None:
    """The ONNX form of an op on bool values where it differs from the generic converter:
    logic for arithmetic, ``Where`` through uint8; None when the generic one serves."""
    name = node.op.name
    if node.out.dtype != np.bool_ or not any(v.dtype == np.bool_ for v in node.inputs):
        return None
    if name in _BOOL_LOGIC and all(v.dtype == np.bool_ for v in node.inputs):
        return e.add(_BOOL_LOGIC[name], xs, out)
    if name == "where":  # onnxruntime has no bool Where: select uint8 values
        cond = e.cast(xs[0], node.inputs[0].dtype, np.bool_)
        a, b = (e.cast(x, v.dtype, np.uint8) for x, v in zip(xs[1:], node.inputs[1:],
                                                              strict=True))
        return e.add("Cast", [e.add("Where", [cond, a, b])], out, to=onnx_type(np.bool_))
    if name in _BOOL_REFUSED:
        raise OnnxExportError(f"to_onnx: op {name} on bool values has no ONNX form (ONNX's "
                              f"{name} has no bool kernel); cast to an integer dtype first")
    return None


def _check_initializers(graph: Graph, initializers: Mapping[str, np.ndarray]) -> None:
    by_name = {v.name: v for v in graph.inputs}
    unknown = sorted(set(initializers) - set(by_name))
    if unknown:
        raise OnnxExportError(f"to_onnx: graph {graph.name} has no inputs named {unknown} "
                              f"(inputs: {sorted(by_name)})")
    for name, array in initializers.items():
        array, value = np.asarray(array), by_name[name]
        if array.shape != value.shape or array.dtype != value.dtype:
            raise OnnxExportError(
                f"to_onnx: initializer {name} is {type_str(array.shape, array.dtype)}, the "
                f"input is {type_str(value.shape, value.dtype)}")


def to_onnx(graph: Graph, path: str | Path | None = None, *, opset: int = MIN_OPSET,
            initializers: Mapping[str, np.ndarray] | None = None) -> Any:
    """``graph`` as an ``onnx.ModelProto`` (written to ``path`` when given), checked by
    ``onnx.checker``. Inputs named in ``initializers`` (input name -> array: parameters,
    buffers) are stored in the model; the others are its inputs. Raises ``OnnxExportError``
    naming the first op that has no ONNX form."""
    onnx = _onnx()
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise OnnxExportError(f"to_onnx: opset must lie in [{MIN_OPSET}, {newest}], got {opset}")
    initializers = dict(initializers or {})
    _check_initializers(graph, initializers)
    nodes = _flat_nodes(graph.nodes)
    for node in nodes:
        if node.op.name not in CONVERTERS:
            raise _refusal(graph, node)
    if graph.updates:
        updated = ", ".join(graph.inputs[j].name for j, _ in graph.updates)
        raise OnnxExportError(
            f"to_onnx: graph {graph.name} updates {updated} in place (BatchNorm's running "
            f"statistics in training mode, a generator's counter): an ONNX model has no state; "
            f"export the model in eval() mode")

    e = Emitter(opset)
    # every IR value keeps its name; helper values are named after the node they serve
    names = {id(v): e.fresh(v.name) for v in [*graph.inputs, *(n.out for n in nodes)]}
    inputs = []
    for value in graph.inputs:
        if value.name in initializers:
            e.initializer(names[id(value)], initializers[value.name])
        else:
            inputs.append(_value_info(onnx, names[id(value)], value))
    for node in nodes:
        e.scope, e.src = names[id(node.out)], node.src
        xs = [names[id(v)] for v in node.inputs]
        try:
            if _bool_values(e, node, xs, e.scope) is None:
                CONVERTERS[node.op.name](e, node, xs, e.scope)
        except (ValueError, TypeError, KeyError) as exc:
            raise OnnxExportError(f"to_onnx: op {node.op.name} ({graph.node_line(node)}): "
                                  f"{exc}") from exc
    e.scope, e.src = "", None
    outputs, produced = [], {n.output[0] for n in e.nodes}
    for value in graph.outputs:
        name = names[id(value)]
        if name not in produced or name in {o.name for o in outputs}:  # an input, a constant
            name = e.add("Identity", [name], e.fresh(f"{value.name}_out"))
        outputs.append(_value_info(onnx, name, value))
    returned = {o.name for o in outputs}
    infos = [_value_info(onnx, names[id(n.out)], n.out) for n in nodes
             if names[id(n.out)] not in returned]
    onnx_graph = onnx.helper.make_graph(e.nodes, sanitize(graph.name), inputs, outputs,
                                        initializer=e.initializers, value_info=infos)
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(onnx_graph, opset_imports=opsets, producer_name="aprender",
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save(model, str(path))
    return model
