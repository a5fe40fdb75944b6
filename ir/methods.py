"""``OpMethods``: the op API shared by eager tensors and symbolic values.

VJP rules call these methods, so one rule works on whatever implements the two hooks:
``_apply(op, inputs, attrs)`` (run or record one op) and ``_coerce(value)`` (turn a Python number
or array into a value of the same kind, as a constant). Each op family defines its methods beside
its OpDefs (``ir/ops/<family>.py``); this class joins them and adds Python's operators.
"""

from __future__ import annotations

from typing import Any

from .ops.collective import CollectiveMethods
from .ops.elementwise import ElementwiseMethods
from .ops.linalg import LinalgMethods
from .ops.nn import NNMethods
from .ops.random import RandomMethods
from .ops.reductions import ReductionMethods
from .ops.shape import ShapeMethods


class OpMethods(ElementwiseMethods, ReductionMethods, ShapeMethods, LinalgMethods,
                NNMethods, RandomMethods, CollectiveMethods):
    """Methods for every op; subclasses provide ``_apply``, ``_coerce``, ``shape``, ``dtype``."""

    __slots__ = ()

    # --- operators -----------------------------------------------------------------------------
    __add__ = ElementwiseMethods.add

    def __radd__(self, other: Any) -> Any:
        return self._coerce(other).add(self)

    __sub__ = ElementwiseMethods.sub

    def __rsub__(self, other: Any) -> Any:
        return self._coerce(other).sub(self)

    __mul__ = ElementwiseMethods.mul

    def __rmul__(self, other: Any) -> Any:
        return self._coerce(other).mul(self)

    __truediv__ = ElementwiseMethods.div

    def __rtruediv__(self, other: Any) -> Any:
        return self._coerce(other).div(self)

    __pow__ = ElementwiseMethods.pow

    def __rpow__(self, base: Any) -> Any:
        return self._coerce(base).power(self)

    __matmul__ = LinalgMethods.matmul

    def __rmatmul__(self, other: Any) -> Any:
        return self._coerce(other).matmul(self)

    __neg__ = ElementwiseMethods.neg

    __abs__ = ElementwiseMethods.abs

    __gt__ = ElementwiseMethods.gt

    __ge__ = ElementwiseMethods.ge

    __lt__ = ElementwiseMethods.lt

    __le__ = ElementwiseMethods.le

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self.eq(other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self.ne(other)

    __hash__ = object.__hash__

