"""``OpMethods``: the op API shared by eager tensors and symbolic values.

VJP rules call these methods, so one rule works on whatever implements the two hooks:
``_apply(op, inputs, attrs)`` (run or record one op) and ``_coerce(value)`` (turn a Python number
or array into a value of the same kind, as a constant).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError, describe, with_location
from .ops import elementwise as ew
from .ops import linalg, reductions
from .ops import shape as shape_ops
from .ops.rules import normalize_axes
from .registry import OpDef


def shape_error(op: str, message: str, *operands: Any) -> ShapeError:
    """A ShapeError naming the op, the operands' types and the user's line."""
    types = ", ".join(describe(v) for v in operands)
    return ShapeError(with_location(f"{op}: {message}; operands {types}"))


def resolve_shape(op: str, value: Any, shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` with one ``-1`` resolved against ``value``'s element count."""
    shape = tuple(int(d) for d in shape)
    size = math.prod(value.shape)
    unknown = [i for i, d in enumerate(shape) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in shape):
        raise shape_error(op, f"invalid shape {list(shape)}", value)
    if unknown:
        rest = math.prod(d for d in shape if d != -1)
        if rest == 0 or size % rest:
            raise shape_error(op, f"cannot view {list(value.shape)} ({size} elements) as "
                                  f"{list(shape)}", value)
        shape = shape[:unknown[0]] + (size // rest,) + shape[unknown[0] + 1:]
    if math.prod(shape) != size:
        raise shape_error(op, f"cannot view {list(value.shape)} ({size} elements) as "
                              f"{list(shape)} ({math.prod(shape)} elements)", value)
    return shape


#: attrs of ops that have none; shared, never mutated
_NO_ATTRS: dict = {}
_ALL_AXES = {"axis": None, "keepdims": False}
_SWAP_2D = {"axes": (1, 0)}


class OpMethods:
    """Methods for every op; subclasses provide ``_apply``, ``_coerce``, ``shape``, ``dtype``."""

    __slots__ = ()
    shape: tuple[int, ...]
    dtype: np.dtype

    def _apply(self, op: OpDef, inputs: tuple, attrs: dict) -> Any:
        raise NotImplementedError

    def _coerce(self, value: Any) -> Any:
        raise NotImplementedError

    def _axes(self, op: str, axis: Any) -> tuple[int, ...] | None:
        if type(axis) is int and 0 <= axis < len(self.shape):
            return (axis,)
        try:
            return normalize_axes(axis, len(self.shape))
        except ValueError as e:
            raise shape_error(op, str(e), self) from None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    # --- binary arithmetic ---------------------------------------------------------------------
    def add(self, other: Any) -> Any:
        """Element-wise ``self + other`` with broadcasting."""
        if not isinstance(other, OpMethods):
            other = self._coerce(other)
        return self._apply(ew.ADD, (self, other), _NO_ATTRS)

    def sub(self, other: Any) -> Any:
        """Element-wise ``self - other``."""
        if not isinstance(other, OpMethods):
            other = self._coerce(other)
        return self._apply(ew.SUB, (self, other), _NO_ATTRS)

    def mul(self, other: Any) -> Any:
        """Element-wise ``self * other``."""
        if not isinstance(other, OpMethods):
            other = self._coerce(other)
        return self._apply(ew.MUL, (self, other), _NO_ATTRS)

    def div(self, other: Any) -> Any:
        """Element-wise ``self / other``."""
        if not isinstance(other, OpMethods):
            other = self._coerce(other)
        return self._apply(ew.DIV, (self, other), _NO_ATTRS)

    def power(self, other: Any) -> Any:
        """Element-wise ``self ** other`` for a tensor exponent."""
        return self._apply(ew.POWER, (self, self._coerce(other)), _NO_ATTRS)

    def maximum(self, other: Any) -> Any:
        """Element-wise maximum."""
        return self._apply(ew.MAXIMUM, (self, self._coerce(other)), _NO_ATTRS)

    def minimum(self, other: Any) -> Any:
        """Element-wise minimum."""
        return self._apply(ew.MINIMUM, (self, self._coerce(other)), _NO_ATTRS)

    def add_broadcast(self, bias: Any) -> Any:
        """``self + bias`` where ``bias`` matches the trailing axes (the seed's bias add)."""
        bias = self._coerce(bias)
        n = len(bias.shape)
        if n > len(self.shape) or tuple(self.shape[len(self.shape) - n:]) != tuple(bias.shape):
            raise shape_error("add_broadcast", "bias must match the trailing axes", self, bias)
        return self._apply(ew.ADD, (self, bias), _NO_ATTRS)

    broadcast_add = add_broadcast

    # --- unary ---------------------------------------------------------------------------------
    def neg(self) -> Any:
        """``-self``."""
        return self._apply(ew.NEG, (self,), _NO_ATTRS)

    def exp(self) -> Any:
        """``e ** self``."""
        return self._apply(ew.EXP, (self,), _NO_ATTRS)

    def log(self) -> Any:
        """Natural logarithm (log 0 is -inf)."""
        return self._apply(ew.LOG, (self,), _NO_ATTRS)

    def sqrt(self) -> Any:
        """Square root."""
        return self._apply(ew.SQRT, (self,), _NO_ATTRS)

    def pow(self, exponent: Any) -> Any:
        """``self ** exponent``; a number exponent is an attribute, a tensor one an input."""
        if isinstance(exponent, int | float | np.number):
            return self._apply(ew.POW, (self,), {"exponent": float(exponent)})
        return self.power(exponent)

    def abs(self) -> Any:
        """``|self|``."""
        return self._apply(ew.ABS, (self,), _NO_ATTRS)

    def sign(self) -> Any:
        """-1, 0 or 1 element-wise (no gradient)."""
        return self._apply(ew.SIGN, (self,), _NO_ATTRS)

    def clip(self, lo: float | None = None, hi: float | None = None) -> Any:
        """Clamp to ``[lo, hi]`` (either bound may be None)."""
        if lo is None and hi is None:
            raise shape_error("clip", "needs lo or hi", self)
        return self._apply(ew.CLIP, (self,), {"lo": lo, "hi": hi})

    def relu(self) -> Any:
        """``max(self, 0)``."""
        return self._apply(ew.RELU, (self,), _NO_ATTRS)

    def leaky_relu(self, slope: float = 0.01) -> Any:
        """``self`` where positive, ``slope * self`` elsewhere."""
        return self._apply(ew.LEAKY_RELU, (self,), {"slope": float(slope)})

    def sigmoid(self) -> Any:
        """Logistic sigmoid."""
        return self._apply(ew.SIGMOID, (self,), _NO_ATTRS)

    def softplus(self) -> Any:
        """``log(1 + e**self)``, computed stably."""
        return self._apply(ew.SOFTPLUS, (self,), _NO_ATTRS)

    def tanh(self) -> Any:
        """Hyperbolic tangent."""
        return self._apply(ew.TANH, (self,), _NO_ATTRS)

    tanh_ = tanh

    def gelu(self) -> Any:
        """GELU (tanh approximation)."""
        return self._apply(ew.GELU, (self,), _NO_ATTRS)

    def astype(self, dtype: Any) -> Any:
        """Cast to ``dtype``."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        return self._apply(ew.ASTYPE, (self,), {"dtype": dtype})

    # --- comparisons and selection -------------------------------------------------------------
    def gt(self, other: Any) -> Any:
        return self._apply(ew.GT, (self, self._coerce(other)), _NO_ATTRS)

    def ge(self, other: Any) -> Any:
        return self._apply(ew.GE, (self, self._coerce(other)), _NO_ATTRS)

    def lt(self, other: Any) -> Any:
        return self._apply(ew.LT, (self, self._coerce(other)), _NO_ATTRS)

    def le(self, other: Any) -> Any:
        return self._apply(ew.LE, (self, self._coerce(other)), _NO_ATTRS)

    def eq(self, other: Any) -> Any:
        return self._apply(ew.EQ, (self, self._coerce(other)), _NO_ATTRS)

    def ne(self, other: Any) -> Any:
        return self._apply(ew.NE, (self, self._coerce(other)), _NO_ATTRS)

    def select(self, a: Any, b: Any) -> Any:
        """``a`` where ``self`` (a condition) is true, else ``b``."""
        if isinstance(a, OpMethods):
            b = a._coerce(b)
        elif isinstance(b, OpMethods):
            a = b._coerce(a)
        else:
            a, b = self._coerce(a), self._coerce(b)
        return self._apply(ew.WHERE, (self, a, b), _NO_ATTRS)

    # --- reductions ----------------------------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> Any:
        """Sum over ``axis`` (int, tuple or None for all)."""
        if axis is None and not keepdims:
            return self._apply(reductions.SUM, (self,), _ALL_AXES)
        return self._apply(reductions.SUM, (self,),
                           {"axis": self._axes("sum", axis), "keepdims": bool(keepdims)})

    def sum_axis(self, axis: int, keepdims: bool = False) -> Any:
        """Sum over one axis: ``[[1,2],[3,4]].sum_axis(0) == [4,6]``."""
        return self._apply(reductions.SUM, (self,),
                           {"axis": self._axes("sum", axis), "keepdims": bool(keepdims)})

    def mean(self, axis: Any = None, keepdims: bool = False) -> Any:
        """Mean over ``axis`` (None: all)."""
        if axis is None and not keepdims:
            return self._apply(reductions.MEAN, (self,), _ALL_AXES)
        return self._apply(reductions.MEAN, (self,),
                           {"axis": self._axes("mean", axis), "keepdims": bool(keepdims)})

    def mean_axis(self, axis: int, keepdims: bool = False) -> Any:
        """Mean over one axis."""
        return self.mean(axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Any:
        """Maximum over ``axis`` (None: all)."""
        if 0 in tuple(self.shape):
            raise shape_error("max", "cannot reduce an empty tensor", self)
        return self._apply(reductions.MAX, (self,),
                           {"axis": self._axes("max", axis), "keepdims": bool(keepdims)})

    def max_axis(self, axis: int, keepdims: bool = False) -> Any:
        """Maximum over one axis."""
        return self.max(axis, keepdims)

    def sum_to(self, shape: Sequence[int]) -> Any:
        """Sum over the axes that broadcasting ``shape`` to this shape would add."""
        shape = tuple(shape)
        if shape == tuple(self.shape):
            return self
        return self._apply(reductions.SUM_TO, (self,), {"shape": shape})

    def softmax(self, axis: int = -1) -> Any:
        """Softmax along ``axis`` (numerically stable)."""
        (a,) = self._axes("softmax", axis)
        return self._apply(reductions.SOFTMAX, (self,), {"axis": a})

    def log_softmax(self, axis: int = -1) -> Any:
        """Log-softmax along ``axis`` (numerically stable)."""
        (a,) = self._axes("log_softmax", axis)
        return self._apply(reductions.LOG_SOFTMAX, (self,), {"axis": a})

    def cross_entropy_rows(self, targets: Any) -> Any:
        """Per-row cross-entropy of these logits ``[N, C]`` against target distributions."""
        return self._apply(reductions.CROSS_ENTROPY, (self, self._coerce(targets)), _NO_ATTRS)

    # --- shapes --------------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Any:
        """Same elements in ``shape`` (one ``-1`` allowed)."""
        if len(shape) == 1 and not isinstance(shape[0], int | np.integer):
            shape = tuple(shape[0])
        if -1 in shape or math.prod(shape) != math.prod(self.shape):
            shape = resolve_shape("reshape", self, shape)
        if shape == tuple(self.shape):
            return self
        return self._apply(shape_ops.RESHAPE, (self,), {"shape": shape})

    def view(self, shape: Sequence[int]) -> Any:
        """The seed's ``view(&shape)``: same element count, ``-1`` allowed."""
        shape = resolve_shape("view", self, shape if not isinstance(shape, int) else (shape,))
        return self.reshape(shape)

    def broadcast_to(self, shape: Sequence[int]) -> Any:
        """Broadcast to ``shape``."""
        shape = tuple(shape)
        if shape == tuple(self.shape):
            return self
        return self._apply(shape_ops.BROADCAST_TO, (self,), {"shape": shape})

    def detach(self) -> Any:
        """The same values with no gradient (a view: in-place updates show in both)."""
        return self._apply(shape_ops.DETACH, (self,), {})

    def transpose(self, axes: Sequence[int] | None = None) -> Any:
        """Reverse the axes (2-D: matrix transpose), or permute them by ``axes``."""
        n = len(self.shape)
        if axes is None and n == 2:
            return self._apply(shape_ops.TRANSPOSE, (self,), _SWAP_2D)
        perm = tuple(range(n))[::-1] if axes is None else tuple(int(a) % max(n, 1) for a in axes)
        if sorted(perm) != list(range(n)):
            raise shape_error("transpose", f"axes {list(axes or ())} are not a permutation", self)
        return self._apply(shape_ops.TRANSPOSE, (self,), {"axes": perm})

    @property
    def T(self) -> Any:  # noqa: N802 - numpy's name
        """The transpose (axes reversed)."""
        return self.transpose()

    def getitem(self, index: tuple) -> Any:
        """Indexing with an already normalised index tuple (see ``__getitem__``)."""
        return self._apply(shape_ops.GETITEM, (self,), {"index": index})

    def scatter_add(self, shape: Sequence[int], index: tuple) -> Any:
        """Zeros of ``shape`` with this value added at ``index`` (getitem's gradient)."""
        return self._apply(shape_ops.SCATTER_ADD, (self,),
                           {"shape": tuple(shape), "index": index})

    def one_hot(self, num_classes: int, dtype: Any = np.float32) -> Any:
        """These integer labels as one-hot rows of ``num_classes`` (no gradient)."""
        if np.dtype(self.dtype).kind not in "iu":
            raise shape_error("one_hot", f"labels must be integers, got {self.dtype}", self)
        return self._apply(shape_ops.ONE_HOT, (self,),
                           {"num_classes": int(num_classes), "dtype": np.dtype(dtype)})

    # --- matmul --------------------------------------------------------------------------------
    def matmul(self, other: Any) -> Any:
        """Matrix product with numpy ``matmul`` rules."""
        if not isinstance(other, OpMethods):
            other = self._coerce(other)
        return self._apply(linalg.MATMUL, (self, other), _NO_ATTRS)

    # --- operators -----------------------------------------------------------------------------
    __add__ = add

    def __radd__(self, other: Any) -> Any:
        return self._coerce(other).add(self)

    __sub__ = sub

    def __rsub__(self, other: Any) -> Any:
        return self._coerce(other).sub(self)

    __mul__ = mul

    def __rmul__(self, other: Any) -> Any:
        return self._coerce(other).mul(self)

    __truediv__ = div

    def __rtruediv__(self, other: Any) -> Any:
        return self._coerce(other).div(self)

    __pow__ = pow

    def __rpow__(self, base: Any) -> Any:
        return self._coerce(base).power(self)

    __matmul__ = matmul

    def __rmatmul__(self, other: Any) -> Any:
        return self._coerce(other).matmul(self)

    __neg__ = neg

    __abs__ = abs

    __gt__ = gt

    __ge__ = ge

    __lt__ = lt

    __le__ = le

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self.eq(other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self.ne(other)

    __hash__ = object.__hash__

