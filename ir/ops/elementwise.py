"""Element-wise ops: arithmetic, unary math, activations, comparisons, selection, casts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import DTypeError, describe, with_location
from ..registry import OpDef, register
from . import special
from .batching import elementwise_batch
from .rules import NO_ATTRS, OpBase, elementwise_infer, shape_error, unbroadcast


def _elementwise(name, impl, vjp=None, *, save_inputs=False, save_output=False, attrs=(),
                 doc="", template=None, save_if_one_needs=None):
    return register(OpDef(name=name, kind="elementwise", impl=impl,
                          infer=elementwise_infer(impl), vjp=vjp, batch=elementwise_batch,
                          save_inputs=save_inputs,
                          save_output=save_output, save_if_one_needs=save_if_one_needs,
                          attrs=attrs, doc=doc, template=template))


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
    save_inputs=True, save_if_one_needs=(1, 0), doc="a * b", template=_ufunc("multiply", 2))


def _div_vjp(g, out, x, at, needs):
    a, b = x
    ga = unbroadcast(g.div(b), a.shape) if needs[0] else None
    gb = unbroadcast(g.mul(a).div(b.mul(b)).neg(), b.shape) if needs[1] else None
    return ga, gb


DIV = _elementwise("div", np.true_divide, _div_vjp, save_inputs=True, doc="a / b",
                   save_if_one_needs=(1, None),  # d(a/b)/db reads a and b
                   template=_ufunc("true_divide", 2))


def _power_vjp(g, out, x, at, needs):
    # PyTorch's rules, so flat points give 0, not 0 * inf = nan:
    #   d/da = 0 where b == 0, else g b a^(b-1)
    #   d/db = 0 where a == 0 and b >= 0, else g a^b log(a)
    a, b = x
    ga = gb = None
    if needs[0]:
        ga = unbroadcast(b.eq(0.0).select(0.0, g.mul(b).mul(a.power(b.sub(1.0)))), a.shape)
    if needs[1]:
        d = g.mul(out).mul(a.log())
        flat = b.ge(0.0).select(a.eq(0.0), False)
        gb = unbroadcast(flat.select(0.0, d), b.shape)
    return ga, gb


POWER = _elementwise("power", np.power, _power_vjp, save_inputs=True, save_output=True,
                     doc="a ** b with a tensor exponent (numpy's dtype: int ** int stays int); "
                         "the gradient is 0 where the function is flat at a == 0 (PyTorch's)",
                     template=_ufunc("power", 2))


def _maximum_vjp(g, out, x, at, needs, *, loses=None):
    # PyTorch's rule: an input gets nothing where it loses, half on a tie, else everything,
    # so where either is NaN (no comparison holds) both get the full gradient
    a, b = x
    loses = loses or (lambda u, v: u.lt(v))
    share = a.eq(b).select(g.mul(0.5), g)
    ga = unbroadcast(loses(a, b).select(0.0, share), a.shape) if needs[0] else None
    gb = unbroadcast(loses(b, a).select(0.0, share), b.shape) if needs[1] else None
    return ga, gb


MAXIMUM = _elementwise("maximum", np.maximum, _maximum_vjp, save_inputs=True,
                       doc="element-wise maximum (NaN propagates); ties split the gradient "
                           "evenly; with a NaN both inputs get the gradient (PyTorch's rule)",
                       template=_ufunc("maximum", 2))
MINIMUM = _elementwise(
    "minimum", np.minimum,
    lambda g, out, x, at, needs: _maximum_vjp(g, out, x, at, needs, loses=lambda u, v: u.gt(v)),
    save_inputs=True, doc="element-wise minimum (NaN propagates); ties split the gradient "
                          "evenly; with a NaN both inputs get the gradient (PyTorch's rule)",
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


def _zero_vjp(g, out, x, at, needs):
    """The gradient of a piecewise-constant op: zeros (PyTorch's), never an error."""
    return (g.zeros_like(),)


ZEROS_LIKE = _elementwise(
    "zeros_like", np.zeros_like, doc="zeros of the input's shape and dtype (the gradient of "
    "piecewise-constant ops; no gradient of its own)", template="np.zeros_like({{ x[0] }})")


def _pow_vjp(g, out, x, at, needs):
    p = at["exponent"]
    if p == 0:  # x ** 0 is 1 everywhere, also at 0 where p x^(p-1) would be 0 * inf
        return (g.zeros_like(),)
    return (g.mul(x[0].pow(p - 1.0)).mul(p),)


POW = _elementwise(
    "pow", lambda a, exponent: np.power(a, exponent), _pow_vjp,
    save_inputs=True, attrs=("exponent",),
    doc="x ** p for a Python number p (an int p keeps an int x's dtype, as numpy); the "
        "gradient of x ** 0 is 0",
    template="power({{ x[0] }}, {{ a.exponent }}, out={{ out }})")
ABS = _elementwise("abs", np.abs, lambda g, out, x, at, needs: (g.mul(x[0].sign()),),
                   save_inputs=True, doc="|x|; gradient 0 at 0", template=_ufunc("absolute", 1))
SIGN = _elementwise("sign", np.sign, _zero_vjp, doc="-1, 0 or 1; gradient zero",
                    template=_ufunc("sign", 1))
FLOOR = _elementwise("floor", np.floor, _zero_vjp, doc="largest integer <= x; gradient zero",
                     template="np.floor({{ x[0] }}, out={{ out }})")


def _round_impl(a, decimals):
    return np.round(a, decimals)


ROUND = _elementwise("round", _round_impl, _zero_vjp, attrs=("decimals",),
                     doc="round half to even to ``decimals`` places (PyTorch's and numpy's); "
                         "gradient zero",
                     template="np.round({{ x[0] }}, {{ a.decimals }}, out={{ out }})")


def _clip_impl(a, lo, hi):
    return np.clip(a, lo, hi)


def _clip_vjp(g, out, x, at, needs):
    # PyTorch's rule: the gradient passes where lo <= x <= hi (so nowhere when lo > hi, and
    # not at NaN)
    a, lo, hi = x[0], at["lo"], at["hi"]
    if hi is not None:
        g = a.le(hi).select(g, 0.0)
    if lo is not None:
        g = a.ge(lo).select(g, 0.0)
    return (g,)


CLIP = _elementwise(
    "clip", _clip_impl, _clip_vjp,
    save_inputs=True, attrs=("lo", "hi"),
    doc="clamp to [lo, hi] (hi wins when lo > hi); gradient 1 where lo <= x <= hi, else 0",
    template="clip({{ x[0] }}, {{ a.lo }}, {{ a.hi }}, out={{ out }})")

SIN = _elementwise("sin", np.sin, lambda g, out, x, at, needs: (g.mul(x[0].cos()),),
                   save_inputs=True, doc="sine", template="np.sin({{ x[0] }}, out={{ out }})")
COS = _elementwise("cos", np.cos, lambda g, out, x, at, needs: (g.mul(x[0].sin()).neg(),),
                   save_inputs=True, doc="cosine", template="np.cos({{ x[0] }}, out={{ out }})")
SQUARE = _elementwise("square", np.square,
                      lambda g, out, x, at, needs: (g.mul(x[0].mul(2.0)),),
                      save_inputs=True, doc="x * x", template="np.square({{ x[0] }}, "
                                                             "out={{ out }})")


def _rsqrt_impl(a):
    r = np.sqrt(a)
    return np.true_divide(1, r, out=r) if type(r) is np.ndarray else np.true_divide(1, r)


RSQRT = _elementwise(
    "rsqrt", _rsqrt_impl,
    # d/dx x^(-1/2) = -1/2 x^(-3/2) = -1/2 out^3
    lambda g, out, x, at, needs: (g.mul(out.mul(out).mul(out)).mul(-0.5),),
    save_output=True, doc="1 / sqrt(x) (no epsilon)",
    template="true_divide(1, sqrt({{ x[0] }}, out={{ out }}), out={{ out }})")

TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf_impl(a):
    return special.erf(a)


ERF = _elementwise(
    "erf", _erf_impl,
    lambda g, out, x, at, needs: (g.mul(x[0].mul(x[0]).neg().exp().mul(TWO_OVER_SQRT_PI)),),
    save_inputs=True, doc="the error function (scipy's when importable, else W. J. Cody's "
                          "approximations: float64-accurate either way)")


ISNAN = _elementwise("isnan", np.isnan, doc="x is NaN (bool, no gradient)",
                     template="np.isnan({{ x[0] }}, out={{ out }})")
ISINF = _elementwise("isinf", np.isinf, doc="x is +-inf (bool, no gradient)",
                     template="np.isinf({{ x[0] }}, out={{ out }})")

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


def _softplus_impl(a, beta, threshold):
    z = a if beta == 1 else np.multiply(a, beta)
    y = np.logaddexp(0, z)
    if beta != 1:
        y = np.true_divide(y, beta)
    return y if threshold is None else np.where(z > threshold, a, y)


# the kernel's numpy calls; beta 1 skips the scaling, threshold None the linear regime
_SOFTPLUS_TEMPLATE = (
    "{% set one = a.beta in ('1', '1.0') %}"
    "{% set z = x[0] if one else '(_z := multiply(' ~ x[0] ~ ', ' ~ a.beta ~ '))' %}"
    "{% set zz = x[0] if one else '_z' %}"
    "{% if a.threshold == 'None' %}"
    "{% if one %}logaddexp(0, {{ z }}, out={{ out }})"
    "{% else %}true_divide(logaddexp(0, {{ z }}), {{ a.beta }}, out={{ out }}){% endif %}"
    "{% else %}where(greater({{ z }}, {{ a.threshold }}), {{ x[0] }}, "
    "{% if one %}logaddexp(0, {{ zz }}){% else %}true_divide(logaddexp(0, {{ zz }}), "
    "{{ a.beta }}){% endif %}){% endif %}")


def _softplus_vjp(g, out, x, at, needs):
    a, beta, threshold = x[0], at["beta"], at["threshold"]
    z = a if beta == 1 else a.mul(beta)
    d = g.mul(z.sigmoid())
    return (d if threshold is None else z.gt(threshold).select(g, d),)


SOFTPLUS = _elementwise(
    "softplus", _softplus_impl, _softplus_vjp, save_inputs=True, attrs=("beta", "threshold"),
    doc="log(1 + e**(beta x)) / beta, computed stably; x itself where beta x > threshold "
        "(PyTorch's linear regime; threshold None: never); its gradient is sigmoid(beta x)",
    template=_SOFTPLUS_TEMPLATE)
TANH = _elementwise("tanh", np.tanh,
                    lambda g, out, x, at, needs: (g.mul(_one_minus(out.mul(out))),),
                    save_output=True, doc="hyperbolic tangent", template=_ufunc("tanh", 1))

GELU_K = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715


def _gelu_impl(a):
    return 0.5 * a * (1.0 + np.tanh(GELU_K * (a + GELU_C * a * a * a)))


#: beyond this |x| the tanh form's 1 - t^2 is 0 in every float dtype (< 1e-30): the derivative's
#: second term is computed at x clipped to it, so x^2 and x^3 cannot overflow (float16 at 1e4
#: gave inf * 0 = nan)
GELU_CLIP = 10.0


def _gelu_vjp(g, out, x, at, needs):
    # d/dx 0.5 x (1 + t), t = tanh(k (x + c x^3)):  0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2)
    a = x[0]
    t = a.mul(a).mul(GELU_C).add(1.0).mul(a).mul(GELU_K).tanh()
    ac = a.clip(-GELU_CLIP, GELU_CLIP)
    a2 = ac.mul(ac)
    tc = a2.mul(GELU_C).add(1.0).mul(ac).mul(GELU_K).tanh()
    inner = a2.mul(3.0 * GELU_C).add(1.0).mul(GELU_K)
    d = t.add(1.0).add(ac.mul(_one_minus(tc.mul(tc))).mul(inner)).mul(0.5)
    return (g.mul(d),)


GELU = _elementwise("gelu", _gelu_impl, _gelu_vjp, save_inputs=True,
                    doc="GELU, tanh approximation (PyTorch's approximate='tanh'), with its "
                        "exact derivative",
                    template="multiply(multiply({{ x[0] }}, 0.5), add(tanh(multiply(add("
                             "{{ x[0] }}, multiply(multiply(multiply({{ x[0] }}, "
                             + repr(GELU_C) + "), {{ x[0] }}), {{ x[0] }})), "
                             + repr(GELU_K) + ")), 1.0), out={{ out }})")

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu_erf_impl(a):
    return 0.5 * a * (1.0 + special.erf(a * SQRT_HALF))


def _gelu_erf_vjp(g, out, x, at, needs):
    # d/dx x Phi(x) = Phi(x) + x phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2,
    # phi(x) = e^(-x^2 / 2) / sqrt(2 pi)
    a = x[0]
    cdf = a.mul(SQRT_HALF).erf().add(1.0).mul(0.5)
    pdf = a.mul(a).mul(-0.5).exp().mul(INV_SQRT_2PI)
    return (g.mul(cdf.add(a.mul(pdf))),)


GELU_ERF = _elementwise("gelu_erf", _gelu_erf_impl, _gelu_erf_vjp, save_inputs=True,
                        doc="GELU, exact form x Phi(x) with the error function (PyTorch's "
                            "default, approximate='none')")


def _silu_impl(a):
    return a * _sigmoid_impl(a)


def _silu_vjp(g, out, x, at, needs):
    # d/dx x s(x) = s + x s (1 - s) = s (1 + x (1 - s))
    a = x[0]
    s = a.sigmoid()
    return (g.mul(s.mul(a.mul(_one_minus(s)).add(1.0))),)


SILU = _elementwise("silu", _silu_impl, _silu_vjp, save_inputs=True,
                    doc="x * sigmoid(x) (SiLU, swish)",
                    template="multiply({{ x[0] }}, add(multiply(tanh(multiply({{ x[0] }}, 0.5)), "
                             "0.5), 0.5), out={{ out }})")


def _elu_impl(a, alpha):
    return np.where(a > 0, a, np.expm1(np.minimum(a, 0)) * alpha)


def _elu_vjp(g, out, x, at, needs):
    # 1 for x > 0, alpha e^x elsewhere (alpha at 0, as PyTorch); e^min(x, 0) cannot overflow
    a = x[0]
    return (a.gt(0.0).select(g, g.mul(a.clip(None, 0.0).exp().mul(at["alpha"]))),)


ELU = _elementwise("elu", _elu_impl, _elu_vjp, save_inputs=True, attrs=("alpha",),
                   doc="x for x > 0, alpha (e^x - 1) elsewhere",
                   template="where(greater({{ x[0] }}, 0), {{ x[0] }}, multiply(np.expm1("
                            "minimum({{ x[0] }}, 0)), {{ a.alpha }}))")

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
        """``self ** exponent``; a number exponent is an attribute, a tensor one an input.
        numpy's dtypes: an int exponent keeps an int tensor int (negative ones are refused, as
        numpy and PyTorch do), a float exponent makes it float64."""
        if isinstance(exponent, int | np.integer):
            exponent = int(exponent)
            if exponent < 0 and self.dtype.kind in "iub":
                raise DTypeError(with_location(
                    f"pow: integers to negative integer powers are not allowed; operands "
                    f"{describe(self)}, exponent {exponent} (use a float exponent)"))
            return self._apply(POW, (self,), {"exponent": exponent})
        if isinstance(exponent, float | np.floating):
            return self._apply(POW, (self,), {"exponent": float(exponent)})
        return self.power(exponent)

    def abs(self) -> Any:
        """``|self|``."""
        return self._apply(ABS, (self,), NO_ATTRS)

    def sign(self) -> Any:
        """-1, 0 or 1 element-wise (gradient zero)."""
        return self._apply(SIGN, (self,), NO_ATTRS)

    def floor(self) -> Any:
        """The largest integer <= each element (gradient zero)."""
        return self._apply(FLOOR, (self,), NO_ATTRS)

    def round(self, decimals: int = 0) -> Any:
        """Round half to even, to ``decimals`` places (gradient zero)."""
        return self._apply(ROUND, (self,), {"decimals": int(decimals)})

    def zeros_like(self) -> Any:
        """Zeros of this shape and dtype (no gradient)."""
        return self._apply(ZEROS_LIKE, (self,), NO_ATTRS)

    def sin(self) -> Any:
        """Sine."""
        return self._apply(SIN, (self,), NO_ATTRS)

    def cos(self) -> Any:
        """Cosine."""
        return self._apply(COS, (self,), NO_ATTRS)

    def square(self) -> Any:
        """``self * self``."""
        return self._apply(SQUARE, (self,), NO_ATTRS)

    def rsqrt(self) -> Any:
        """``1 / sqrt(self)``."""
        return self._apply(RSQRT, (self,), NO_ATTRS)

    def erf(self) -> Any:
        """The error function."""
        return self._apply(ERF, (self,), NO_ATTRS)

    def isnan(self) -> Any:
        """Where the values are NaN (bool)."""
        return self._apply(ISNAN, (self,), NO_ATTRS)

    def isinf(self) -> Any:
        """Where the values are +inf or -inf (bool)."""
        return self._apply(ISINF, (self,), NO_ATTRS)

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

    def softplus(self, beta: float = 1.0, threshold: float | None = None) -> Any:
        """``log(1 + e**(beta self)) / beta``, computed stably; ``self`` itself where
        ``beta * self > threshold`` (PyTorch's ``F.softplus`` passes 20; None: never)."""
        return self._apply(SOFTPLUS, (self,), {
            "beta": float(beta), "threshold": None if threshold is None else float(threshold)})

    def tanh(self) -> Any:
        """Hyperbolic tangent."""
        return self._apply(TANH, (self,), NO_ATTRS)

    tanh_ = tanh

    def gelu(self, approximate: str = "tanh") -> Any:
        """GELU. The default is the seed's tanh approximation (so is ``nn.GELU()``'s);
        ``approximate="none"`` is the exact erf form, PyTorch's default, which ``F.gelu``
        follows."""
        if approximate == "tanh":
            return self._apply(GELU, (self,), NO_ATTRS)
        if approximate == "none":
            return self._apply(GELU_ERF, (self,), NO_ATTRS)
        raise shape_error("gelu", f"approximate must be 'none' or 'tanh', got {approximate!r}",
                          self)

    def silu(self) -> Any:
        """``self * sigmoid(self)``."""
        return self._apply(SILU, (self,), NO_ATTRS)

    def elu(self, alpha: float = 1.0) -> Any:
        """``self`` where positive, ``alpha * (e**self - 1)`` elsewhere."""
        return self._apply(ELU, (self,), {"alpha": float(alpha)})

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
