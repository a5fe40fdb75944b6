"""numpy functions called on tensors: NEP 13 (``__array_ufunc__``) and NEP 18
(``__array_function__``) for ``Tensor``.

The rules (a numpy function never silently drops a gradient):

1. A ufunc called with a Tensor operand (``np.exp(t)``, ``np.add(a, t)``, ``array + t``,
   ``array < t``, ``np.maximum(t, 0)``, ``np.matmul(a, t)``) runs the Tensor method of the same
   meaning (``UFUNC_METHODS``) and returns a Tensor with its gradient; inside ``ap.compile`` it
   is recorded like any op. A ufunc without a method there follows rule 3.
   ``np.add.reduce``/``multiply``/``maximum``/``minimum``/``logical_and``/``logical_or``
   map to ``sum``/``prod``/``amax``/``amin``/``all``/``any``, ``np.add.accumulate`` to
   ``cumsum``, ``np.<binary>.outer`` to a broadcast op. Anything a tensor cannot do is a
   TypeError naming the ufunc and what to use instead: ``out=`` (``arr += t`` too), a ``where=``
   mask, ``dtype=``/``casting=``/..., and the methods ``at``, ``reduceat`` and the other
   ``reduce``/``accumulate``/``outer``.
2. The numpy functions in ``HANDLED`` (``np.sum, np.mean, np.max, np.amax, np.min, np.amin,
   np.prod, np.var, np.std, np.argmax, np.argmin, np.cumsum, np.any, np.all, np.dot, np.inner,
   np.outer, np.einsum, np.transpose, np.swapaxes, np.moveaxis, np.reshape, np.ravel,
   np.squeeze, np.expand_dims, np.broadcast_to, np.concatenate, np.stack, np.hstack, np.vstack,
   np.split, np.array_split, np.flip, np.roll, np.tile, np.tril, np.triu, np.where, np.clip,
   np.round, np.around``) run the aprender op with numpy's argument names (``axis``,
   ``keepdims``, ``ddof``) and numpy's semantics (``axis=()`` reduces nothing: a new tensor of
   the same values, ``axis=None`` flattens for cumsum/argmax/concatenate), returning Tensors;
   Python numbers stay weak operands as in ``t + 1.5``, lists and arrays follow numpy's dtypes.
   ``np.shape, np.ndim, np.size, np.result_type`` answer from the tensor's metadata;
   ``np.zeros_like, np.ones_like, np.empty_like`` (zeros) and ``np.full_like`` return new
   Tensors that do not require grad.
   Arguments a tensor op cannot take (``out=``, ``where=``, ``initial=``, ``order='F'``) are a
   TypeError.
3. Any other numpy function or ufunc: when a Tensor argument requires grad (a leaf marked
   ``requires_grad()`` or any result computed from one with gradients on), a TypeError
   ("numpy.<name> is not differentiable in aprender; ... call .data() ..."). Otherwise it runs
   on the values and returns what numpy returns (plain numpy, outside the graph, as for a
   numpy array); inside ``ap.compile`` reading the values is refused (GraphError).
4. Converting a tensor that requires grad to an array (``np.asarray(t)``, ``np.array([t])``,
   ``np.r_[t]``, and everything numpy does through ``__array__``) is a TypeError, as in
   PyTorch; ``t.data()`` (or ``t.detach()``) gives the values without gradients. Tensors that
   do not require grad convert as before (see ``Tensor.__array__``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple

from ..errors import describe, with_location
from .functional import as_tensor, concat, einsum, first_tensor, stack, where
from .state import STATE
from .tensor import Tensor

_NO = np._NoValue  # numpy's "not given" default, as numpy's own signatures use it

# --- ufuncs (rule 1) ---------------------------------------------------------------------------

#: numpy ufunc name -> the Tensor method of the same meaning; a ufunc not listed has no
#: aprender op (rule 3). Add a name here when its Tensor method is added.
UFUNC_METHODS: dict[str, str] = {
    # arithmetic
    "add": "add", "subtract": "sub", "multiply": "mul", "divide": "div", "power": "pow",
    "negative": "neg", "absolute": "abs", "fabs": "abs", "sign": "sign", "square": "square",
    "maximum": "maximum", "minimum": "minimum", "matmul": "matmul",
    # exponentials, logarithms, roots, trigonometry
    "exp": "exp", "log": "log", "sqrt": "sqrt", "sin": "sin", "cos": "cos", "tanh": "tanh",
    # rounding (rint rounds half to even, as PyTorch's round)
    "floor": "floor", "rint": "round",
    # predicates and comparisons (no gradient)
    "isnan": "isnan", "isinf": "isinf", "greater": "gt", "greater_equal": "ge", "less": "lt",
    "less_equal": "le", "equal": "eq", "not_equal": "ne",
}

#: ``ufunc.reduce`` -> the reduction it is (``_reduction`` picks the method)
_REDUCE = {"add": "sum", "multiply": "prod", "maximum": "amax", "minimum": "amin",
           "logical_and": "all", "logical_or": "any"}

#: ufunc keywords a tensor op can honour only at their default value
_UFUNC_DEFAULTS = {"casting": "same_kind", "order": "K", "subok": True, "dtype": None,
                   "signature": None}


_OURS = (Tensor, np.ndarray, float, int, bool)


def _foreign(values: Any) -> bool:
    """Whether one of ``values`` is another library's array (it gets its own turn)."""
    for v in values:
        if type(v) in _OURS:
            continue
        hook = getattr(type(v), "__array_ufunc__", None)
        if hook is not None and not isinstance(v, Tensor | np.ndarray | np.generic):
            return True
    return False


#: frames that are not the user's line either: numpy calls ``__array__`` from its own code
#: (``np.r_[t]``)
_NUMPY_FRAMES = (os.path.dirname(os.path.abspath(np.__file__)) + os.sep,)


def conversion_error(t: Tensor) -> TypeError:
    """Rule 4: converting ``t``, which requires grad, to a numpy array (``Tensor.__array__``)."""
    return TypeError(with_location(
        f"can't convert {describe(t)}, a tensor that requires grad, to a numpy array "
        f"(np.asarray, np.array, np.r_, or a numpy function without an aprender op): the "
        f"gradient would be lost. Use t.data() (or t.detach()) for the values without "
        f"gradients, or ap.stack / ap.concat to build a tensor from tensors with gradients",
        _NUMPY_FRAMES))


def _refuse(name: str, what: str, instead: str) -> TypeError:
    return TypeError(with_location(f"{name}: {what} is not supported on aprender tensors; "
                                   f"{instead}", _NUMPY_FRAMES))


def _not_differentiable(name: str, t: Tensor, hint: str = "") -> TypeError:
    hint = hint or "use the matching Tensor method or aprender function"
    return TypeError(with_location(
        f"{name} is not differentiable in aprender: its operand {describe(t)} requires grad, "
        f"and computing on its values would drop the gradient; {hint}, or call .data() to "
        f"work on the values without gradients", _NUMPY_FRAMES))


def _collect(obj: Any, found: list[Tensor]) -> None:
    """Append every Tensor inside ``obj`` (nested lists, tuples and dicts) to ``found``."""
    if isinstance(obj, Tensor):
        found.append(obj)
    elif isinstance(obj, list | tuple):
        for item in obj:
            _collect(item, found)
    elif isinstance(obj, dict):
        for item in obj.values():
            _collect(item, found)


def _values(obj: Any) -> Any:
    """``obj`` with every Tensor replaced by its (read-only) values."""
    if isinstance(obj, Tensor):
        return obj.data()
    if isinstance(obj, list | tuple):
        return type(obj)(_values(item) for item in obj)
    if isinstance(obj, dict):
        return {k: _values(v) for k, v in obj.items()}
    return obj


def _on_values(name: str, call: Callable, args: Any, kwargs: dict, hint: str = "") -> Any:
    """Rule 3: compute on the values when no Tensor argument requires grad, else refuse."""
    found: list[Tensor] = []
    _collect((args, kwargs), found)
    for t in found:
        if t._rg:
            raise _not_differentiable(name, t, hint)
    if STATE.recorder is not None and found:
        STATE.recorder.check_read(name)
    return call(*_values(args), **_values(kwargs))


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_ufunc__`` (NEP 13): rule 1 of the module docstring."""
    if _foreign(inputs) or _foreign(kwargs.get("out", ())):
        return NotImplemented
    if method == "__call__" and not kwargs:  # the common case: np.exp(t), array + t
        return _ufunc_call(ufunc, f"numpy.{ufunc.__name__}", inputs)
    name = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    out = kwargs.pop("out", None)
    if out is not None and any(o is not None for o in out):
        raise _refuse(name, "out= (also `array += tensor`)",
                      "aprender ops return a new tensor: write `y = a + b` / `y = np.add(a, b)`"
                      " (an ndarray on the left of += becomes that tensor with `arr = arr + t`"
                      "); to update a leaf in place use add_/sub_/mul_/assign under no_grad()")
    where = kwargs.pop("where", True)
    if where is not True:
        raise _refuse(name, "where= (a mask)",
                      f"compute everywhere and select: np.where(mask, {name}(...), other)")
    for key, value in kwargs.items():
        if key in _UFUNC_DEFAULTS and (value is _UFUNC_DEFAULTS[key] or (
                isinstance(value, str) and value == _UFUNC_DEFAULTS[key])):
            continue
        if method == "__call__" or key not in ("axis", "keepdims"):
            hint = "cast with .astype(dtype) instead" if key == "dtype" else \
                "call it without this argument"
            raise _refuse(name, f"{key}={value!r}", hint)
    if method == "__call__":
        return _ufunc_call(ufunc, name, inputs)
    if method == "reduce":
        return _ufunc_reduce(ufunc, name, inputs, kwargs)
    if method == "accumulate" and ufunc.__name__ == "add":
        t = inputs[0] if isinstance(inputs[0], Tensor) else Tensor(inputs[0])
        return t.cumsum(kwargs.get("axis", 0))
    if method == "outer" and ufunc.__name__ in UFUNC_METHODS and ufunc.nin == 2:
        a, b = inputs
        like = first_tensor(a, b)
        a, b = _tensor(a, like), _tensor(b, like)
        return _ufunc_call(ufunc, name, (a.reshape(tuple(a.shape) + (1,) * b.ndim), b))
    instead = {"at": "it updates an array in place; tensors are updated by ops that return a "
                     "new tensor (index, scatter_add) or, on leaves, add_/sub_/assign",
               "reduceat": "slice the tensor and reduce each piece (sum, amax, ...)",
               "accumulate": "use cumsum (add) or a loop of ops"}.get(
        method, "use the Tensor methods (sum, prod, amax, amin, cumsum, broadcasting ops)")
    raise _refuse(name, f"the ufunc method {method}()", instead)


def _ufunc_call(ufunc: np.ufunc, name: str, inputs: tuple) -> Any:
    like = first_tensor(*inputs)
    method = UFUNC_METHODS.get(ufunc.__name__)
    if ufunc.__name__ == "positive" and len(inputs) == 1:
        return like
    if method is None:
        return _on_values(name, ufunc, inputs, {},
                          f"aprender has no op for {name} yet (no Tensor method "
                          f"{ufunc.__name__})")
    first = _tensor(inputs[0], like)
    # the other operand as the operator would take it (``t ** 2`` keeps 2 an attribute)
    rest = [v if isinstance(v, Tensor | bool | int | float | np.generic) else _tensor(v, like)
            for v in inputs[1:]]
    if ufunc.__name__ == "power" and first is not inputs[0]:
        return first.power(*rest)  # a number or array base: the exponent is the tensor
    return getattr(first, method)(*rest)


def _ufunc_reduce(ufunc: np.ufunc, name: str, inputs: tuple, kwargs: dict) -> Any:
    reduction = _REDUCE.get(ufunc.__name__)
    if reduction is None or len(inputs) != 1:
        raise _refuse(name, "reduce()", "use the reduction methods (sum, prod, amax, amin, "
                      "all, any)")
    t = inputs[0] if isinstance(inputs[0], Tensor) else Tensor(inputs[0])
    return _reduction(reduction, t, kwargs.get("axis", 0), bool(kwargs.get("keepdims")))


# --- reductions shared by ufunc.reduce and the array functions -------------------------------

def _axis_arg(axis: Any) -> Any:
    if axis is None or isinstance(axis, int | np.integer):
        return None if axis is None else int(axis)
    return tuple(int(a) for a in axis)


def _reduction(kind: str, t: Tensor, axis: Any, keepdims: bool) -> Tensor:
    """``t`` reduced by the Tensor method ``kind`` over numpy's ``axis`` (None: all; an int; a
    tuple) with numpy's ``keepdims``."""
    axis = _axis_arg(axis)
    if axis == () and kind not in ("any", "all"):
        # numpy reduces over no axis (PyTorch's dim=() would reduce over all): a new tensor of
        # the same values (a same-shape reshape is its own node), gradient connected
        return t.reshape(t.shape)
    return getattr(t, kind)(axis=axis, keepdims=keepdims)


# --- array functions (rule 2) ------------------------------------------------------------------

#: numpy function -> its implementation on tensors (numpy's signature)
HANDLED: dict[Callable, Callable] = {}


def implements(*funcs: Callable) -> Callable:
    def register(impl: Callable) -> Callable:
        for f in funcs:
            HANDLED[f] = impl
        return impl
    return register


def _fname(func: Callable) -> str:
    return f"{getattr(func, '__module__', None) or 'numpy'}.{func.__name__}"


def array_function(func: Callable, types: tuple, args: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_function__`` (NEP 18): rules 2 and 3 of the module docstring."""
    if not all(issubclass(t, Tensor | np.ndarray) for t in types):
        return NotImplemented
    impl = HANDLED.get(func)
    if impl is not None:
        return impl(*args, **kwargs)
    name = _fname(func)
    return _on_values(name, func, args, kwargs, _HINTS.get(name, ""))


#: what to use instead of numpy functions that have no differentiable counterpart here
_HINTS = {
    "numpy.linalg.norm": "use (t * t).sum().sqrt() (or .sum(axis) for norms along an axis)",
    "numpy.copy": "use t.detach() for a copy of the values outside the graph",
    "numpy.average": "use (t * w).sum(axis) / w.sum(axis)",
    "numpy.isclose": "compare with ops, e.g. (a - b).abs() <= atol + rtol * b.abs()",
    "numpy.allclose": "compare a.data() and b.data()",
    "numpy.array_equal": "compare a.data() and b.data()",
}


def _tensor(value: Any, like: Tensor) -> Tensor:
    """``value`` as ``functional.as_tensor`` makes it beside ``like`` (Python numbers weak),
    except that a list or other array-like follows numpy (a list of floats is float64)."""
    if not isinstance(value, Tensor | bool | int | float | np.ndarray | np.generic):
        value = np.asarray(value)
    return as_tensor(value, like)


def _no(name: str, **given: Any) -> None:
    """Refuse numpy arguments that a tensor op cannot honour (given and not at the default)."""
    for key, value in given.items():
        if value is _NO or value is None:
            continue
        raise _refuse(f"numpy.{name}", f"{key}=", {
            "out": "aprender ops return a new tensor: use the result (y = np.sum(t))",
            "where": "mask first: np.where(mask, t, 0) and reduce that",
            "initial": "combine the reduced result with the initial value using ops",
        }.get(key, "call it without this argument"))


def _cast(t: Tensor, dtype: Any) -> Tensor:
    return t if dtype is None else t.astype(dtype)


def _keep(keepdims: Any) -> bool:
    return False if keepdims is _NO else bool(keepdims)


def _like_shape(func: Callable, t: Tensor, *args: Any, **kwargs: Any) -> tuple[int, ...]:
    """The shape numpy's ``func`` gives for ``t``'s shape (numpy's own checks and errors),
    from a zero-stride stand-in that allocates nothing."""
    return func(np.broadcast_to(np.zeros((), dtype=np.bool_), t.shape), *args, **kwargs).shape


@implements(np.sum)
def _sum(a, axis=None, dtype=None, out=None, keepdims=_NO, initial=_NO, where=_NO):
    _no("sum", out=out, initial=initial, where=where)
    return _reduction("sum", _cast(a, dtype), axis, _keep(keepdims))


@implements(np.mean)
def _mean(a, axis=None, dtype=None, out=None, keepdims=_NO, *, where=_NO):
    _no("mean", out=out, where=where)
    return _reduction("mean", _cast(a, dtype), axis, _keep(keepdims))


@implements(np.max, np.amax)
def _max(a, axis=None, out=None, keepdims=_NO, initial=_NO, where=_NO):
    _no("max", out=out, initial=initial, where=where)
    return _reduction("amax", a, axis, _keep(keepdims))


@implements(np.min, np.amin)
def _min(a, axis=None, out=None, keepdims=_NO, initial=_NO, where=_NO):
    _no("min", out=out, initial=initial, where=where)
    return _reduction("amin", a, axis, _keep(keepdims))


@implements(np.prod)
def _prod(a, axis=None, dtype=None, out=None, keepdims=_NO, initial=_NO, where=_NO):
    _no("prod", out=out, initial=initial, where=where)
    return _reduction("prod", _cast(a, dtype), axis, _keep(keepdims))


@implements(np.any)
def _any(a, axis=None, out=None, keepdims=_NO, *, where=_NO):
    _no("any", out=out, where=where)
    return _reduction("any", a, axis, _keep(keepdims))


@implements(np.all)
def _all(a, axis=None, out=None, keepdims=_NO, *, where=_NO):
    _no("all", out=out, where=where)
    return _reduction("all", a, axis, _keep(keepdims))


def _moment(name: str, a: Tensor, axis: Any, dtype: Any, ddof: Any, keepdims: Any,
            correction: Any, mean: Any) -> Tensor:
    if mean is not _NO:
        raise _refuse(f"numpy.{name}", "mean=", "call it without a precomputed mean")
    if correction is not _NO:
        if ddof != 0:
            raise ValueError(f"numpy.{name}: ddof and correction can't be provided "
                             f"simultaneously")
        ddof = correction
    t = _cast(a, dtype)
    if t.dtype.kind != "f":
        t = t.astype(np.float64)  # numpy's float64 for integers
    axis = _axis_arg(axis)
    if axis == ():  # numpy: each element alone (PyTorch's dim=() would reduce over all)
        var = t.sub(t).div(max(1 - ddof, 0))
        return var.sqrt() if name == "std" else var
    return getattr(t, name)(axis=axis, correction=ddof, keepdims=_keep(keepdims))


@implements(np.var)
def _var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=_NO, *, where=_NO, mean=_NO,
         correction=_NO):
    _no("var", out=out, where=where)
    return _moment("var", a, axis, dtype, ddof, keepdims, correction, mean)


@implements(np.std)
def _std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=_NO, *, where=_NO, mean=_NO,
         correction=_NO):
    _no("std", out=out, where=where)
    return _moment("std", a, axis, dtype, ddof, keepdims, correction, mean)


def _arg(kind: str, a: Tensor, axis: Any, keepdims: Any) -> Tensor:
    fn = getattr(a, kind)
    if axis is None:  # the index in the flattened values; numpy's keepdims keeps every axis
        out = fn()
        return out.reshape((1,) * a.ndim) if _keep(keepdims) else out
    return fn(axis=int(axis), keepdims=_keep(keepdims))


@implements(np.argmax)
def _argmax(a, axis=None, out=None, *, keepdims=_NO):
    _no("argmax", out=out)
    return _arg("argmax", a, axis, keepdims)


@implements(np.argmin)
def _argmin(a, axis=None, out=None, *, keepdims=_NO):
    _no("argmin", out=out)
    return _arg("argmin", a, axis, keepdims)


@implements(np.cumsum)
def _cumsum(a, axis=None, dtype=None, out=None):
    _no("cumsum", out=out)
    t = _cast(a, dtype)
    if axis is None:  # numpy: over the flattened values
        return t.reshape(-1).cumsum(axis=0)
    return t.cumsum(axis=int(axis))


# --- products ----------------------------------------------------------------------------------

@implements(np.dot)
def _dot(a, b, out=None):
    _no("dot", out=out)
    like = first_tensor(a, b)
    a, b = _tensor(a, like), _tensor(b, like)
    if a.ndim == 0 or b.ndim == 0:
        return a.mul(b)
    if b.ndim > 2:
        raise _refuse("numpy.dot", f"a {b.ndim}-d second operand",
                      "use np.matmul / @ (batched) or np.einsum for numpy's dot over the "
                      "second-to-last axis")
    return a.matmul(b)  # equal to numpy's dot when the second operand has at most 2 axes


@implements(np.inner)
def _inner(a, b):
    like = first_tensor(a, b)
    a, b = _tensor(a, like), _tensor(b, like)
    if a.ndim == 0 or b.ndim == 0:
        return a.mul(b)
    if b.ndim > 2:
        raise _refuse("numpy.inner", f"a {b.ndim}-d second operand", "use np.einsum")
    return a.matmul(b if b.ndim == 1 else b.transpose())


@implements(np.outer)
def _outer(a, b, out=None):
    _no("outer", out=out)
    like = first_tensor(a, b)
    a, b = _tensor(a, like), _tensor(b, like)
    return a.reshape(-1, 1).mul(b.reshape(1, -1))


@implements(np.einsum)
def _einsum(*operands, out=None, optimize=False, **kwargs):
    _no("einsum", out=out)
    for key, value in kwargs.items():
        if not (key == "dtype" and value is None or key == "casting" and value == "safe"
                or key == "order" and value == "K"):
            raise _refuse("numpy.einsum", f"{key}=", "call it without this argument")
    if not isinstance(operands[0], str):
        raise _refuse("numpy.einsum", "the sublist form einsum(op, [0, 1], ...)",
                      "write the subscripts as a string: np.einsum('ij,jk->ik', a, b)")
    like = first_tensor(*operands[1:])
    return einsum(operands[0], *[_tensor(x, like) for x in operands[1:]])


# --- shapes ------------------------------------------------------------------------------------

@implements(np.transpose)
def _transpose(a, axes=None):
    if axes is None:
        return a.transpose()
    return a.transpose(normalize_axis_tuple(tuple(axes), a.ndim, allow_duplicate=True))


@implements(np.swapaxes)
def _swapaxes(a, axis1, axis2):
    perm = list(range(a.ndim))
    i, j = normalize_axis_index(int(axis1), a.ndim), normalize_axis_index(int(axis2), a.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return a.transpose(tuple(perm))


@implements(np.moveaxis)
def _moveaxis(a, source, destination):
    src = normalize_axis_tuple(source, a.ndim, "source")
    dst = normalize_axis_tuple(destination, a.ndim, "destination")
    if len(src) != len(dst):
        raise ValueError("`source` and `destination` arguments must have the same number of "
                         "elements")
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return a.transpose(tuple(order))


@implements(np.reshape)
def _reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if shape is None:
        shape = newshape
    if order != "C":
        raise _refuse("numpy.reshape", f"order={order!r}",
                      "tensors reshape in C order; transpose first for another order")
    if copy is False:
        raise _refuse("numpy.reshape", "copy=False", "tensor reshapes may copy")
    return a.reshape(tuple(shape) if not isinstance(shape, int | np.integer) else (int(shape),))


@implements(np.ravel)
def _ravel(a, order="C"):
    if order not in ("C", "K", "A"):
        raise _refuse("numpy.ravel", f"order={order!r}", "transpose first")
    return a.reshape(-1)


@implements(np.squeeze)
def _squeeze(a, axis=None):
    return a.reshape(_like_shape(np.squeeze, a, axis))


@implements(np.expand_dims)
def _expand_dims(a, axis):
    return a.reshape(_like_shape(np.expand_dims, a, axis))


@implements(np.broadcast_to)
def _broadcast_to(array, shape, subok=False):
    shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(shape)
    return array.broadcast_to(shape)


def _joined(name: str, arrays: Any, dtype: Any, casting: Any) -> list[Tensor]:
    if casting not in (None, "same_kind"):
        raise _refuse(f"numpy.{name}", f"casting={casting!r}", "cast with .astype() first")
    arrays = list(arrays)
    like = first_tensor(*arrays)
    return [_cast(_tensor(x, like), dtype) for x in arrays]


@implements(np.concatenate)
def _concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _no("concatenate", out=out)
    values = _joined("concatenate", arrays, dtype, casting)
    if axis is None:
        values, axis = [v.reshape(-1) for v in values], 0
    return concat(values, int(axis))


@implements(np.stack)
def _stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _no("stack", out=out)
    return stack(_joined("stack", arrays, dtype, casting), int(axis))


@implements(np.hstack)
def _hstack(tup, *, dtype=None, casting="same_kind"):
    values = [v if v.ndim else v.reshape(1) for v in _joined("hstack", tup, dtype, casting)]
    return concat(values, 0 if values and values[0].ndim == 1 else 1)


@implements(np.vstack)
def _vstack(tup, *, dtype=None, casting="same_kind"):
    values = [v.reshape(_like_shape(np.atleast_2d, v)) if v.ndim < 2 else v
              for v in _joined("vstack", tup, dtype, casting)]
    return concat(values, 0)


def _pieces(ary: Tensor, indices_or_sections: Any, axis: Any, equal: bool) -> list[Tensor]:
    """numpy's ``split`` (``equal``) or ``array_split`` of ``ary`` along ``axis``."""
    axis = normalize_axis_index(int(axis), ary.ndim)
    n = ary.shape[axis]
    if not isinstance(indices_or_sections, int | np.integer):
        # indices are slice bounds, as in numpy: negative, past the end or decreasing ones
        # (overlapping pieces) are beyond Tensor.split's sizes
        bounds = [0, *(int(i) for i in indices_or_sections), n]
        lead = (slice(None),) * axis
        return [ary[lead + (slice(lo, hi),)] for lo, hi in itertools.pairwise(bounds)]
    sections = int(indices_or_sections)
    if sections <= 0:
        raise ValueError("number sections must be larger than 0.")
    if equal and n % sections:
        raise ValueError("array split does not result in an equal division")
    each, extra = divmod(n, sections)  # array_split: the first pieces one longer
    return list(ary.split([each + 1] * extra + [each] * (sections - extra), axis))


@implements(np.split)
def _split(ary, indices_or_sections, axis=0):
    return _pieces(ary, indices_or_sections, axis, True)


@implements(np.array_split)
def _array_split(ary, indices_or_sections, axis=0):
    return _pieces(ary, indices_or_sections, axis, False)


@implements(np.flip)
def _flip(m, axis=None):
    return m.flip(tuple(range(m.ndim)) if axis is None else normalize_axis_tuple(axis, m.ndim))


@implements(np.tile)
def _tile(A, reps):  # noqa: N803 - numpy's name
    reps = (int(reps),) if isinstance(reps, int | np.integer) else tuple(int(r) for r in reps)
    return A.repeat((1,) * (A.ndim - len(reps)) + reps)  # PyTorch's repeat is numpy's tile


@implements(np.roll)
def _roll(a, shift, axis=None):
    return a.roll(shift, axis)


@implements(np.tril)
def _tril(m, k=0):
    return m.tril(int(k))


@implements(np.triu)
def _triu(m, k=0):
    return m.triu(int(k))


# --- element-wise functions that are not ufuncs -------------------------------------------------

@implements(np.where)
def _where(condition, x=_NO, y=_NO):
    if x is _NO and y is _NO:  # the indices of the true values: no aprender op yet (rule 3)
        return _on_values("numpy.where", np.where, (condition,), {},
                          "aprender has no Tensor method nonzero (one-argument where) yet")
    if x is _NO or y is _NO:
        raise ValueError("either both or neither of x and y should be given")
    if isinstance(condition, Tensor) and condition.dtype != np.bool_:
        condition = condition.ne(0)
    return where(condition, x, y)


@implements(np.clip)
def _clip(a, a_min=_NO, a_max=_NO, out=None, *, min=_NO, max=_NO, **kwargs):  # noqa: A002
    _no("clip", out=out)
    if kwargs:
        raise _refuse("numpy.clip", f"{next(iter(kwargs))}=", "call it without this argument")
    lo = a_min if min is _NO else min
    hi = a_max if max is _NO else max
    lo, hi = (None if v is _NO else v for v in (lo, hi))
    if lo is None and hi is None:
        raise ValueError("One of max or min must be given")
    t = _tensor(a, first_tensor(a, lo, hi))
    if all(v is None or isinstance(v, int | float | np.number) for v in (lo, hi)):
        # number bounds are attributes (Python numbers: weak, an int tensor stays int)
        return t.clip(*(v.item() if isinstance(v, np.number) else v for v in (lo, hi)))
    if lo is not None:
        t = t.maximum(lo)
    return t if hi is None else t.minimum(hi)


@implements(np.round, np.around)
def _round(a, decimals=0, out=None):
    _no("round", out=out)
    return a.round(decimals=int(decimals))


# --- metadata and new tensors ------------------------------------------------------------------

@implements(np.shape)
def _shape(a):
    return tuple(a.shape)


@implements(np.ndim)
def _ndim(a):
    return a.ndim


@implements(np.size)
def _size(a, axis=None):
    return a.size if axis is None else a.shape[normalize_axis_index(int(axis), a.ndim)]


@implements(np.result_type)
def _result_type(*arrays_and_dtypes):
    return np.result_type(*[v.dtype if isinstance(v, Tensor) else v for v in arrays_and_dtypes])


def _new_like(name: str, a: Tensor, fill: Any, dtype: Any, order: Any, subok: Any,
              shape: Any) -> Tensor:
    if order not in ("K", "C", "A"):
        raise _refuse(f"numpy.{name}", f"order={order!r}", "tensors are C-ordered")
    shape = a.shape if shape is None else (
        (int(shape),) if isinstance(shape, int | np.integer) else tuple(shape))
    return Tensor._as_input(np.full(shape, fill, dtype=a.dtype if dtype is None else dtype))


@implements(np.zeros_like, np.empty_like)
def _zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _new_like("zeros_like", a, 0, dtype, order, subok, shape)


@implements(np.ones_like)
def _ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _new_like("ones_like", a, 1, dtype, order, subok, shape)


@implements(np.full_like)
def _full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    if isinstance(fill_value, Tensor):
        raise _refuse("numpy.full_like", "a tensor fill_value", "use ap.full or broadcast_to")
    return _new_like("full_like", a, fill_value, dtype, order, subok, shape)
