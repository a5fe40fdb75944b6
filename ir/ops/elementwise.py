"""Element-wise ops: arithmetic, unary math, activations, comparisons, selection, casts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..registry import OpDef, register
from .rules import NO_ATTRS, OpBase, elementwise_infer, shape_error, unbroadcast


def _elementwise(name, impl, vjp=None, *, save_inputs=False, save_output=False, attrs=(),
                 doc="", template=None):
    return register(OpDef(name=name, kind="elementwise", impl=impl,
                          infer=elementwise_infer(impl), vjp=vjp, save_inputs=save_inputs,
                          save_output=save_output, attrs=attrs, doc=doc, template=template))


def _ufunc(name: str, arity: int) -> str:
    """The codegen template of a numpy ufunc call writing into the planned buffer."""
    args = ", ".join(f"{{{{ x[{i}] }}}}" for i in range(arity))
    return f"{name}({args}, out={{{{ out }}}})"


def _one_minus(v):
    return v.neg().add(1.0)


# --- binary arithmetic -------------------------------------------------------------------------

def _pair(needs, ga, gb):
    """Build only the wanted gradients: ``ga``/``gb`` are thunks."""
    return (ga() if needs[0] else None, gb() if needs[1] else None)


ADD = _elementwise(
    "add", np.add,
    lambda g, out, x, at, needs: _pair(needs, lambda: unbroadcast(g, x[0].shape),
                                       lambda: unbroadcast(g, x[1].shape)),
    doc="a + b with numpy broadcasting", template=_ufunc("add", 2))

SUB = _elementwise(
    "sub", np.subtract,
    lambda g, out, x, at, needs: _pair(needs, lambda: unbroadcast(g, x[0].shape),
                                       lambda: unbroadcast(g.neg(), x[1].shape)),
    doc="a - b", template=_ufunc("subtract", 2))

MUL = _elementwise(
    "mul", np.multiply,
    lambda g, out, x, at, needs: _pair(needs, lambda: unbroadcast(g.mul(x[1]), x[0].shape),
                                       lambda: unbroadcast(g.mul(x[0]), x[1].shape)),
    save_inputs=True, doc="a * b", template=_ufunc("multiply", 2))


def _div_vjp(g, out, x, at, needs):
    a, b = x
    ga = unbroadcast(g.div(b), a.shape) if needs[0] else None
    gb = unbroadcast(g.mul(a).div(b.mul(b)).neg(), b.shape) if needs[1] else None
    return ga, gb


DIV = _elementwise("div", np.true_divide, _div_vjp, save_inputs=True, doc="a / b",
    template=_ufunc("true_divide", 2))


def _power_vjp(g, out, x, at, needs):
    a, b = x
    ga = unbroadcast(g.mul(b).mul(a.power(b.sub(1.0))), a.shape) if needs[0] else None
    gb = unbroadcast(g.mul(out).mul(a.log()), b.shape) if needs[1] else None
    return ga, gb


POWER = _elementwise("power", np.power, _power_vjp, save_inputs=True, save_output=True,
                     doc="a ** b with a tensor exponent", template=_ufunc("power", 2))


def _maximum_vjp(g, out, x, at, needs, *, pick=None):
    a, b = x
    pick = pick or (lambda u, v: u.gt(v))
    half = a.eq(b).select(g.mul(0.5), 0.0)
    ga = unbroadcast(pick(a, b).select(g, half), a.shape) if needs[0] else None
    gb = unbroadcast(pick(b, a).select(g, half), b.shape) if needs[1] else None
    return ga, gb


MAXIMUM = _elementwise("maximum", np.maximum, _maximum_vjp, save_inputs=True,
                       doc="element-wise maximum; ties split the gradient evenly",
    template=_ufunc("maximum", 2))
MINIMUM = _elementwise(
    "minimum", np.minimum,
    lambda g, out, x, at, needs: _maximum_vjp(g, out, x, at, needs, pick=lambda u, v: u.lt(v)),
    save_inputs=True, doc="element-wise minimum; ties split the gradient evenly",
    template=_ufunc("minimum", 2))

# --- unary math --------------------------------------------------------------------------------

NEG = _elementwise("neg", np.negative, lambda g, out, x, at, needs: (g.neg(),), doc="-x",
    template=_ufunc("negative", 1))
EXP = _elementwise("exp", np.exp, lambda g, out, x, at, needs: (g.mul(out),),
                   save_output=True, doc="e ** x", template=_ufunc("exp", 1))
LOG = _elementwise("log", np.log, lambda g, out, x, at, needs: (g.div(x[0]),),
                   save_inputs=True, doc="natural log; log 0 is -inf as in numpy",
    template=_ufunc("log", 1))
SQRT = _elementwise("sqrt", np.sqrt, lambda g, out, x, at, needs: (g.div(out.mul(2.0)),),
                    save_output=True, doc="square root (no epsilon)", template=_ufunc("sqrt", 1))
POW = _elementwise(
    "pow", lambda a, exponent: np.power(a, exponent),
    lambda g, out, x, at, needs: (g.mul(x[0].pow(at["exponent"] - 1.0)).mul(at["exponent"]),),
    save_inputs=True, attrs=("exponent",), doc="x ** p for a Python number p",
    template="power({{ x[0] }}, {{ a.exponent }}, out={{ out }})")
ABS = _elementwise("abs", np.abs, lambda g, out, x, at, needs: (g.mul(x[0].sign()),),
                   save_inputs=True, doc="|x|; gradient 0 at 0", template=_ufunc("absolute", 1))
SIGN = _elementwise("sign", np.sign, doc="-1, 0 or 1 (no gradient)", template=_ufunc("sign", 1))


def _clip_impl(a, lo, hi):
    return np.clip(a, lo, hi)


CLIP = _elementwise(
    "clip", _clip_impl,
    lambda g, out, x, at, needs: (g.mul(x[0].clip(at["lo"], at["hi"]).eq(x[0])),),
    save_inputs=True, attrs=("lo", "hi"), doc="clamp to [lo, hi]; gradient 1 inside, 0 outside",
    template="clip({{ x[0] }}, {{ a.lo }}, {{ a.hi }}, out={{ out }})")

# --- activations -------------------------------------------------------------------------------


def _relu_impl(a):
    return np.maximum(a, 0, dtype=a.dtype) if a.dtype.kind == "f" else np.maximum(a, 0)


RELU = _elementwise("relu", _relu_impl, lambda g, out, x, at, needs: (g.mul(x[0].gt(0.0)),),
                    save_inputs=True, doc="max(x, 0); gradient 0 at 0",
                    template="maximum({{ x[0] }}, 0, out={{ out }})")


def _leaky_relu_impl(a, slope):
    return np.where(a > 0, a, a * slope)


LEAKY_RELU = _elementwise(
    "leaky_relu", _leaky_relu_impl,
    lambda g, out, x, at, needs: (x[0].gt(0.0).select(g, g.mul(at["slope"])),),
    save_inputs=True, attrs=("slope",), doc="x for x > 0, slope * x for x <= 0")


def _sigmoid_impl(a):
    return np.tanh(a * 0.5) * 0.5 + 0.5


SIGMOID = _elementwise(
    "sigmoid", _sigmoid_impl,
    lambda g, out, x, at, needs: (g.mul(out.mul(_one_minus(out))),),
    save_output=True, doc="1 / (1 + e**-x), computed stably",
    template="add(multiply(tanh(multiply({{ x[0] }}, 0.5, out={{ out }}), out={{ out }}), 0.5, "
             "out={{ out }}), 0.5, out={{ out }})")
SOFTPLUS = _elementwise(
    "softplus", lambda a: np.logaddexp(0, a),
    lambda g, out, x, at, needs: (g.mul(x[0].sigmoid()),),
    save_inputs=True, doc="log(1 + e**x), computed stably; its gradient is sigmoid(x)",
    template="logaddexp(0, {{ x[0] }}, out={{ out }})")
TANH = _elementwise("tanh", np.tanh,
                    lambda g, out, x, at, needs: (g.mul(_one_minus(out.mul(out))),),
                    save_output=True, doc="hyperbolic tangent", template=_ufunc("tanh", 1))

GELU_K = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715


def _gelu_impl(a):
    return 0.5 * a * (1.0 + np.tanh(GELU_K * (a + GELU_C * a * a * a)))


def _gelu_vjp(g, out, x, at, needs):
    # d/dx 0.5 x (1 + t), t = tanh(k (x + c x^3)):  0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2)
    a = x[0]
    a2 = a.mul(a)
    t = a2.mul(GELU_C).add(1.0).mul(a).mul(GELU_K).tanh()
    inner = a2.mul(3.0 * GELU_C).add(1.0).mul(GELU_K)
    d = t.add(1.0).add(a.mul(_one_minus(t.mul(t))).mul(inner)).mul(0.5)
    return (g.mul(d),)


GELU = _elementwise("gelu", _gelu_impl, _gelu_vjp, save_inputs=True,
                    doc="GELU, tanh approximation, with its exact derivative")

# --- comparisons, selection, casts -------------------------------------------------------------

def _comparison(name: str, ufunc: np.ufunc, symbol: str) -> OpDef:
    return _elementwise(name, ufunc, doc=f"a {symbol} b (bool, no gradient)",
                        template=_ufunc(ufunc.__name__, 2))


GT = _comparison("gt", np.greater, ">")
GE = _comparison("ge", np.greater_equal, ">=")
LT = _comparison("lt", np.less, "<")
LE = _comparison("le", np.less_equal, "<=")
EQ = _comparison("eq", np.equal, "==")
NE = _comparison("ne", np.not_equal, "!=")


def _where_vjp(g, out, x, at, needs):
    cond, a, b = x
    ga = unbroadcast(cond.select(g, 0.0), a.shape) if needs[1] else None
    gb = unbroadcast(cond.select(0.0, g), b.shape) if needs[2] else None
    return None, ga, gb


WHERE = _elementwise("where", np.where, _where_vjp, save_inputs=True,
                     doc="a where cond else b (cond gets no gradient)",
                     template="where({{ x[0] }}, {{ x[1] }}, {{ x[2] }})")


def _astype_impl(a, dtype):
    return a.astype(dtype, copy=False)


ASTYPE = _elementwise("astype", _astype_impl,
                      lambda g, out, x, at, needs: (g.astype(x[0].dtype),),
                      attrs=("dtype",), doc="cast to dtype; the gradient is cast back",
                      template="{{ x[0] }}.astype({{ a.dtype }})")


class ElementwiseMethods(OpBase):
    """Tensor methods of the element-wise ops (see ``OpMethods``)."""

    __slots__ = ()

    # --- binary arithmetic ---------------------------------------------------------------------
    def add(self, other: Any) -> Any:
        """Element-wise ``self + other`` with broadcasting."""
        if not isinstance(other, OpBase):
            other = self._coerce(other)
        return self._apply(ADD, (self, other), NO_ATTRS)

    def sub(self, other: Any) -> Any:
        """Element-wise ``self - other``."""
        if not isinstance(other, OpBase):
            other = self._coerce(other)
        return self._apply(SUB, (self, other), NO_ATTRS)

    def mul(self, other: Any) -> Any:
        """Element-wise ``self * other``."""
        if not isinstance(other, OpBase):
            other = self._coerce(other)
        return self._apply(MUL, (self, other), NO_ATTRS)

    def div(self, other: Any) -> Any:
        """Element-wise ``self / other``."""
        if not isinstance(other, OpBase):
            other = self._coerce(other)
        return self._apply(DIV, (self, other), NO_ATTRS)

    def power(self, other: Any) -> Any:
        """Element-wise ``self ** other`` for a tensor exponent."""
        return self._apply(POWER, (self, self._coerce(other)), NO_ATTRS)

    def maximum(self, other: Any) -> Any:
        """Element-wise maximum."""
        return self._apply(MAXIMUM, (self, self._coerce(other)), NO_ATTRS)

    def minimum(self, other: Any) -> Any:
        """Element-wise minimum."""
        return self._apply(MINIMUM, (self, self._coerce(other)), NO_ATTRS)

    def add_broadcast(self, bias: Any) -> Any:
        """``self + bias`` where ``bias`` matches the trailing axes (the seed's bias add)."""
        bias = self._coerce(bias)
        n = len(bias.shape)
        if n > len(self.shape) or tuple(self.shape[len(self.shape) - n:]) != tuple(bias.shape):
            raise shape_error("add_broadcast", "bias must match the trailing axes", self, bias)
        return self._apply(ADD, (self, bias), NO_ATTRS)

    broadcast_add = add_broadcast

    # --- unary ---------------------------------------------------------------------------------
    def neg(self) -> Any:
        """``-self``."""
        return self._apply(NEG, (self,), NO_ATTRS)

    def exp(self) -> Any:
        """``e ** self``."""
        return self._apply(EXP, (self,), NO_ATTRS)

    def log(self) -> Any:
        """Natural logarithm (log 0 is -inf)."""
        return self._apply(LOG, (self,), NO_ATTRS)

    def sqrt(self) -> Any:
        """Square root."""
        return self._apply(SQRT, (self,), NO_ATTRS)

    def pow(self, exponent: Any) -> Any:
        """``self ** exponent``; a number exponent is an attribute, a tensor one an input."""
        if isinstance(exponent, int | float | np.number):
            return self._apply(POW, (self,), {"exponent": float(exponent)})
        return self.power(exponent)

    def abs(self) -> Any:
        """``|self|``."""
        return self._apply(ABS, (self,), NO_ATTRS)

    def sign(self) -> Any:
        """-1, 0 or 1 element-wise (no gradient)."""
        return self._apply(SIGN, (self,), NO_ATTRS)

    def clip(self, lo: float | None = None, hi: float | None = None) -> Any:
        """Clamp to ``[lo, hi]`` (either bound may be None)."""
        if lo is None and hi is None:
            raise shape_error("clip", "needs lo or hi", self)
        return self._apply(CLIP, (self,), {"lo": lo, "hi": hi})

    def relu(self) -> Any:
        """``max(self, 0)``."""
        return self._apply(RELU, (self,), NO_ATTRS)

    def leaky_relu(self, slope: float = 0.01) -> Any:
        """``self`` where positive, ``slope * self`` elsewhere."""
        return self._apply(LEAKY_RELU, (self,), {"slope": float(slope)})

    def sigmoid(self) -> Any:
        """Logistic sigmoid."""
        return self._apply(SIGMOID, (self,), NO_ATTRS)

    def softplus(self) -> Any:
        """``log(1 + e**self)``, computed stably."""
        return self._apply(SOFTPLUS, (self,), NO_ATTRS)

    def tanh(self) -> Any:
        """Hyperbolic tangent."""
        return self._apply(TANH, (self,), NO_ATTRS)

    tanh_ = tanh

    def gelu(self) -> Any:
        """GELU (tanh approximation)."""
        return self._apply(GELU, (self,), NO_ATTRS)

    def astype(self, dtype: Any) -> Any:
        """Cast to ``dtype``."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        return self._apply(ASTYPE, (self,), {"dtype": dtype})

    # --- comparisons and selection -------------------------------------------------------------
    def gt(self, other: Any) -> Any:
        return self._apply(GT, (self, self._coerce(other)), NO_ATTRS)

    def ge(self, other: Any) -> Any:
        return self._apply(GE, (self, self._coerce(other)), NO_ATTRS)

    def lt(self, other: Any) -> Any:
        return self._apply(LT, (self, self._coerce(other)), NO_ATTRS)

    def le(self, other: Any) -> Any:
        return self._apply(LE, (self, self._coerce(other)), NO_ATTRS)

    def eq(self, other: Any) -> Any:
        return self._apply(EQ, (self, self._coerce(other)), NO_ATTRS)

    def ne(self, other: Any) -> Any:
        return self._apply(NE, (self, self._coerce(other)), NO_ATTRS)

    def select(self, a: Any, b: Any) -> Any:
        """``a`` where ``self`` (a condition) is true, else ``b``."""
        if isinstance(a, OpBase):
            b = a._coerce(b)
        elif isinstance(b, OpBase):
            a = b._coerce(a)
        else:
            a, b = self._coerce(a), self._coerce(b)
        return self._apply(WHERE, (self, a, b), NO_ATTRS)
