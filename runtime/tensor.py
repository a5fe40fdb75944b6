"""The eager ``Tensor``: computes with numpy at once and records each op on the thread's tape."""

from __future__ import annotations

import enum
import itertools
import math
import weakref
from collections.abc import Iterator, Sequence
from typing import Any
from weakref import ref as _weakref

import numpy as np

from ..errors import DTypeError, GraphError, ShapeError, describe, user_location, with_location
from ..ir.graph import Node
from ..ir.methods import OpMethods
from ..ir.registry import OpDef, Operand
from .anomaly import check_finite
from .state import STATE

_ids = itertools.count(1)
_by_id: weakref.WeakValueDictionary[int, Tensor] = weakref.WeakValueDictionary()
#: Python-scalar operands as 0-d constant tensors (weak numpy promotion against the other
#: operand), shared because nothing ever updates them in place
_constants: dict[tuple, Tensor] = {}
_constant_ids: set[int] = set()
_new = object.__new__
_ndarray = np.ndarray


#: numpy dtype kinds a tensor may hold: bool, integers, floats, complex (no gradient)
_KINDS = "biufc"


def default_array(data: Any, dtype: Any = None) -> np.ndarray:
    """The array a Tensor holds for ``data``: numpy arrays keep their dtype (copied), Python
    lists and scalars become float32 (bools stay bool), ``dtype`` overrides. Object, string and
    date dtypes raise DTypeError; ragged nested lists raise ShapeError."""
    if isinstance(data, Tensor):
        data = data._data
    try:
        if isinstance(data, np.ndarray | np.generic):
            arr = np.array(data, dtype=dtype, copy=True)
        elif dtype is not None:
            arr = np.array(data, dtype=dtype)
        else:
            arr = np.array(data)
            if arr.dtype.kind in "iuf":
                arr = arr.astype(np.float32)
    except ValueError as e:
        if "inhomogeneous" in str(e) or "sequence" in str(e):
            raise ShapeError(with_location(
                f"Tensor: the nested sequences have different lengths (a ragged list, e.g. "
                f"[[1, 2], [3]]); every row must have the same shape ({e})")) from None
        raise DTypeError(with_location(f"Tensor: cannot make a tensor from "
                                       f"{type(data).__name__}: {e}")) from None
    except TypeError as e:
        raise DTypeError(with_location(f"Tensor: cannot make a tensor from "
                                       f"{type(data).__name__}: {e}")) from None
    if arr.dtype.kind not in _KINDS:
        raise DTypeError(with_location(
            f"Tensor: cannot make a tensor from {type(data).__name__} of numpy dtype "
            f"{arr.dtype}; tensors hold bool, integer, float or complex numbers"))
    return arr


def array_of(value: Any) -> np.ndarray | None:
    """The array a tensor holds, an array itself, or None for anything else."""
    if isinstance(value, Tensor):
        return value._data
    return value if isinstance(value, np.ndarray) else None


def _wrap(data: np.ndarray, node: Node | None, rg: bool, vc: list[int] | None = None) -> Tensor:
    t = _new(Tensor)
    t._data = data
    t._node = node
    t._rg = rg
    t._grad = None
    t._vc = [0] if vc is None else vc
    t._id = None
    if STATE.recorder is not None:
        STATE.recorder.new_tensor(t, data)
    return t


def op_error(op: OpDef, inputs: Sequence[Tensor], attrs: dict, cause: Exception) -> Exception:
    """The exception for ``op`` failing on ``inputs``: op, shapes, dtypes and the user's line."""
    try:
        op.infer(*inputs, **attrs)
        reason = str(cause)
    except Exception as e:  # the shape rule's message is the clearer one
        reason = str(e)
    shown = {k: v for k, v in attrs.items() if k != "index"}
    text = f"{op.name}: {reason}; operands " + ", ".join(describe(t) for t in inputs)
    if shown:
        text += f"; attrs {shown}"
    text = with_location(text)
    return DTypeError(text) if isinstance(cause, TypeError) else ShapeError(text)


class TapeNode(Node):
    """A tape node of an op that some input did not require grad for when it ran. ``needs[i]``:
    whether input ``i`` did; a leaf marked with ``requires_grad()`` later gets no gradient
    through this op (as in PyTorch). Ops whose inputs all required grad record a plain
    ``Node``."""

    __slots__ = ("needs",)


_TF = (True, False)
_FT = (False, True)


def _refuse_complex_gradient(op: OpDef, inputs: tuple, data: np.ndarray) -> None:
    """An op on an input that requires grad gave a non-float result: integer and bool results
    carry no gradient; a complex one raises (gradients are real-valued here)."""
    if data.dtype.kind == "c":
        raise DTypeError(with_location(
            f"{op.name}: gradients through complex numbers are not supported, and this op "
            f"gives a complex result ({data.dtype}) from an input that requires grad; operands "
            + ", ".join(describe(t) for t in inputs) + ". Use detach() on the float operand "
            "or compute under no_grad()"))


def apply(op: OpDef, inputs: tuple, attrs: dict) -> Tensor:
    """Run ``op`` on ``inputs`` with numpy; record a node when a gradient may be needed.

    This is the hot path of eager mode: it is written out flat on purpose.
    """
    n = len(inputs)
    first = inputs[0]
    try:
        if n == 2:
            data = op.impl(first._data, inputs[1]._data, **attrs)
        elif n == 1:
            data = op.impl(first._data, **attrs)
        else:
            data = op.impl(*[t._data for t in inputs], **attrs)
    except (ValueError, TypeError, IndexError) as e:
        raise op_error(op, inputs, attrs, e) from None
    if type(data) is not _ndarray:
        data = np.asarray(data)
    st = STATE
    if st.anomaly:
        check_finite(op.name, data, "forward")
    out = _new(Tensor)
    out._data = data
    out._grad = None
    out._id = None
    out._vc = first._vc if op.aliases_input else [0]
    # needs: which inputs require grad now, None when all of them do
    needs = None
    if st.grad_enabled and op.vjp is not None:
        if n == 1:
            rg = first._rg
        elif n == 2:
            rg = first._rg
            if rg:
                if not inputs[1]._rg:
                    needs = _TF
            elif inputs[1]._rg:
                rg = True
                needs = _FT
        else:
            flags = [t._rg for t in inputs]
            rg = True in flags
            if False in flags:
                needs = tuple(flags)
        if rg and data.dtype.kind != "f":
            _refuse_complex_gradient(op, inputs, data)
            rg = False
    else:
        rg = False
    rec = st.recorder
    if rg or rec is not None:
        if rg and needs is None:
            node = _new(Node)
        else:  # kept in the node: a leaf marked later gets no gradient through this op
            node = _new(TapeNode)
            if not rg:  # traced, no input requires grad now
                needs = tuple([t._rg for t in inputs])
            node.needs = needs
        node.op = op
        node.inputs = inputs
        node.attrs = attrs
        node.out = None
        node.value = data
        node.src = user_location() if rec is not None else None
        if op.save_inputs:
            if op.shape_only:
                saved = tuple([(t._vc, t._vc[0]) for i, t in enumerate(inputs)
                               if i not in op.shape_only])
            elif n == 1:
                saved = ((first._vc, first._vc[0]),)
            elif n == 2:
                second = inputs[1]._vc
                keep = None
                if needs is not None and op.save_if_one_needs is not None:
                    keep = op.save_if_one_needs[needs is _FT]
                if keep is None:
                    saved = ((first._vc, first._vc[0]), (second, second[0]))
                elif keep:
                    saved = ((second, second[0]),)
                else:
                    saved = ((first._vc, first._vc[0]),)
            else:
                saved = tuple([(t._vc, t._vc[0]) for t in inputs])
            if op.save_output:
                saved += ((out._vc, 0),)
        elif op.save_output:
            saved = ((out._vc, 0),)
        else:
            saved = ()
        node.saved = saved
        tape = node.tape = st.tape
        refs = tape.refs
        refs.append(_weakref(node))
        if len(refs) > tape.limit:
            tape.compact()
        if rec is not None:
            rec.op(node, out)
        out._rg = rg
        out._node = node
    else:
        out._rg = False
        out._node = None
    return out


def _normalize_index(index: Any) -> tuple[tuple, tuple]:
    """An index as ``(items, arrays)``: items are ints, slices, None, Ellipsis and
    ``Operand(k)`` standing for ``arrays[k - 1]``, the integer index arrays as tensors (inputs
    of the ``index`` op, so a compiled call reads them anew each time)."""
    items = index if isinstance(index, tuple) else (index,)
    if all(type(item) is slice or type(item) is int for item in items):
        return items, ()
    out: list = []
    arrays: list[Tensor] = []
    for item in items:
        if isinstance(item, list):
            item = np.asarray(item)
        if isinstance(item, np.ndarray | Tensor):
            kind = item.dtype.kind
            if kind not in "iub":
                raise DTypeError(with_location(f"getitem: index arrays must be integer or bool, "
                                               f"got {item.dtype}"))
            if item.ndim == 0 and kind != "b" and not isinstance(item, Tensor):
                out.append(int(item))  # a 0-d tensor stays an input: its value may change
                continue
            if kind == "b":
                if STATE.recorder is not None and STATE.recorder.staging:
                    raise GraphError(with_location(
                        f"getitem: a boolean mask inside {STATE.recorder.inside} gives a shape "
                        f"that depends on the data; use where() or masked_fill() instead"))
                mask = item._data if isinstance(item, Tensor) else item
                for positions in np.nonzero(mask):
                    arrays.append(Tensor._as_input(positions))
                    out.append(Operand(len(arrays)))
                continue
            arrays.append(item if isinstance(item, Tensor) else Tensor._as_input(item))
            out.append(Operand(len(arrays)))
        elif isinstance(item, np.integer):
            out.append(int(item))
        elif isinstance(item, int | slice) or item is None or item is Ellipsis:
            out.append(item)
        else:
            raise DTypeError(with_location(f"getitem: unsupported index {item!r}"))
    return tuple(out), tuple(arrays)


class Tensor(OpMethods):
    """An n-dimensional array that records the ops applied to it for ``backward()``.

    ``Tensor(data, dtype=None)``: Python lists and scalars become float32, numpy arrays keep their
    dtype (float64 stays float64), ``dtype`` overrides.
    """

    __slots__ = ("_data", "_node", "_rg", "_grad", "_vc", "_id", "__weakref__")
    # --- numpy protocols (rules in runtime/numpy_interop.py) -----------------------------------
    __array_priority__ = 1000.0  # legacy protocol; numpy consults __array_ufunc__ first

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """NEP 13: ``np.exp(t)``, ``array + t``: the aprender op (with gradient) or a clear
        TypeError, never a plain array that drops the gradient."""
        from .numpy_interop import array_ufunc

        return array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: tuple, args: tuple, kwargs: dict) -> Any:
        """NEP 18: ``np.sum(t, axis=0)``, ``np.concatenate([a, t])``: the aprender op (with
        gradient), or numpy on the values when no tensor argument requires grad."""
        from .numpy_interop import array_function

        return array_function(func, types, args, kwargs)

    def __init__(self, data: Any, dtype: Any = None) -> None:
        rec = STATE.recorder
        if rec is not None and isinstance(data, Tensor) and dtype is not None:
            data = data.astype(dtype)  # recorded as an op, so the copy stays connected
        self._data = default_array(data, dtype)
        self._node = None
        self._rg = False
        self._grad = None
        self._vc = [0]
        self._id = None
        if rec is not None:
            rec.new_tensor(self, data)

    _apply = staticmethod(apply)

    @staticmethod
    def _as_input(array: np.ndarray) -> Tensor:
        """A leaf sharing ``array`` (no copy): how compile() passes numpy arguments."""
        return _wrap(array, None, False)

    def _coerce(self, value: Any) -> Tensor:
        if isinstance(value, Tensor):
            return value
        if isinstance(value, bool | int | float):
            key = (value, type(value), self._data.dtype, value == 0 and math.copysign(1, value))
            const = _constants.get(key)
            if const is None:
                if len(_constants) >= 512:
                    _constants.clear()
                    _constant_ids.clear()
                dtype = np.result_type(self._data, value)
                const = _wrap(np.asarray(value, dtype=dtype), None, False)
                if STATE.recorder is None:  # one made in a trace is the trace's own constant
                    _constants[key] = const
                    _constant_ids.add(id(const))
            return const
        if isinstance(value, np.ndarray | np.generic):
            value = np.asarray(value)
            if value.dtype.kind not in _KINDS:
                raise DTypeError(with_location(
                    f"cannot use a numpy array of dtype {value.dtype} as an operand; tensors "
                    f"hold bool, integer, float or complex numbers"))
            return _wrap(value, None, False)
        return Tensor(value)

    # --- constructors (the seed's names) -------------------------------------------------------
    @staticmethod
    def from_slice(values: Sequence[float], dtype: Any = None) -> Tensor:
        """A 1-D tensor of ``values``."""
        t = Tensor(values, dtype)
        if t.ndim != 1:
            raise ShapeError(with_location(f"from_slice: needs a flat sequence, got shape "
                                           f"{list(t.shape)}"))
        return t

    def __deepcopy__(self, memo: dict) -> Tensor:
        """``copy.deepcopy(t)`` (and ``copy.copy``): a new tensor with a copy of the values, a
        leaf that requires grad when ``t`` is one (as in PyTorch); recorded when traced."""
        if self._rg and self._node is not None:
            raise GraphError(with_location(
                f"copy: {describe(self)} was computed from tensors that require grad; only "
                f"leaves can be copied (as in PyTorch); copy t.detach() instead"))
        out = Tensor(self)
        if self._rg:
            out.requires_grad()
        memo[id(self)] = out
        return out

    def __copy__(self) -> Tensor:
        return self.__deepcopy__({})

    @staticmethod
    def new(data: Any, shape: Sequence[int], dtype: Any = None) -> Tensor:
        """``data`` reshaped to ``shape``; a ValueError naming both sizes when they differ."""
        if isinstance(data, Tensor):  # a recorded copy, so a trace reads the values anew
            data = Tensor(data, dtype)
            dtype = None
            if data.size == int(np.prod(shape)):
                return data.reshape(tuple(int(d) for d in shape))
        arr = default_array(data, dtype)
        shape = tuple(int(d) for d in shape)
        if arr.size != int(np.prod(shape)):
            raise ShapeError(with_location(
                f"new: {arr.size} values cannot fill shape {list(shape)} "
                f"({int(np.prod(shape))} elements)"))
        return _wrap(arr.reshape(shape), None, False)

    @staticmethod
    def zeros(shape: Sequence[int], dtype: Any = np.float32) -> Tensor:
        """A tensor of zeros."""
        return _wrap(np.zeros(tuple(shape), dtype=dtype), None, False)

    @staticmethod
    def ones(shape: Sequence[int], dtype: Any = np.float32) -> Tensor:
        """A tensor of ones."""
        return _wrap(np.ones(tuple(shape), dtype=dtype), None, False)

    # --- properties ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    # --- gradient state ------------------------------------------------------------------------
    def requires_grad(self, flag: bool = True) -> Tensor:
        """Mark this leaf to accumulate ``grad()`` in ``backward()``; returns the tensor. As in
        PyTorch, ops that used it before the mark give it no gradient."""
        if not self.is_leaf():
            if not flag:
                raise GraphError(with_location("requires_grad: a tensor computed by the graph "
                                               "always requires grad; use detach()"))
            return self
        if flag and self._data.dtype.kind != "f":
            raise DTypeError(with_location(
                f"requires_grad: gradients need a float dtype, got {describe(self)}"))
        self._node = None  # a traced op's output that eager would not have recorded: a leaf
        self._rg = bool(flag)
        return self

    requires_grad_ = requires_grad

    def requires_grad_enabled(self) -> bool:
        """Whether a gradient flows to this tensor."""
        return self._rg

    def is_leaf(self) -> bool:
        """True unless the tensor was computed by an op that recorded it for backward (a
        trace records every op; eager only those that require grad)."""
        return self._node is None or (not self._rg and STATE.recorder is not None)

    def grad(self) -> Tensor | None:
        """The accumulated gradient of this leaf (its dtype), or None."""
        if self._node is not None:
            return None
        return self._grad if STATE.recorder is None else STATE.recorder.read_grad(self)

    def backward(self, grad: Any = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``grad()``; ``grad`` seeds a tensor with
        more than one element; ``create_graph=True`` records the backward for higher orders."""
        from .engine import backward

        backward(self, grad, create_graph)

    def backward_with_grad(self, grad: Any) -> None:
        """``backward(grad)`` (the Rust library's name)."""
        self.backward(grad)

    # --- values --------------------------------------------------------------------------------
    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if STATE.recorder is not None:
            STATE.recorder.check_read("item")
        if self._data.size != 1:
            raise ShapeError(with_location(f"item: needs a one-element tensor, got "
                                           f"{describe(self)}"))
        return self._data.item()

    def data(self) -> np.ndarray:
        """A read-only numpy view of the values."""
        if STATE.recorder is not None:
            STATE.recorder.check_read("data")
        view = self._data.view()
        view.flags.writeable = False
        return view

    numpy = data

    def tolist(self) -> Any:
        if STATE.recorder is not None:
            STATE.recorder.check_read("tolist")
        return self._data.tolist()

    def len(self) -> int:
        """Number of elements (the seed's ``len()``)."""
        return self._data.size

    numel = len

    def id(self) -> int:
        """A stable integer id, usable with ``get_grad`` and ``clear_grad``."""
        if self._id is None:
            self._id = next(_ids)
            _by_id[self._id] = self
        return self._id

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(t)``: the values of a tensor that does not require grad (read-only
        view); a tensor that requires grad is refused, as in PyTorch (use ``data()``)."""
        if STATE.recorder is not None:
            STATE.recorder.check_read("numpy conversion")
        if self._rg:
            from .numpy_interop import conversion_error

            raise conversion_error(self)
        if copy or (dtype is not None and np.dtype(dtype) != self._data.dtype):
            return np.array(self._data, dtype=dtype, copy=True)
        return self.data()

    def __getitem__(self, index: Any) -> Tensor:
        items, arrays = _normalize_index(index)
        return self.index(items, arrays) if arrays else self.getitem(items)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if STATE.recorder is not None:
            STATE.recorder.check_read("bool")
        if self._data.size != 1:
            raise ShapeError(with_location(f"bool: the truth value of a tensor with "
                                           f"{self._data.size} elements is ambiguous"))
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        state = ""
        if self._node is not None:
            state = f", grad_fn={self._node.op.name}"
        elif self._rg:
            state = ", requires_grad=True, grad=" + ("set" if self._grad is not None else "None")
        return f"tensor({body}, shape={tuple(self.shape)}, dtype={self.dtype}{state})"

    # --- in-place leaf updates (optimizers) ----------------------------------------------------
    def _check_inplace(self, op: str) -> None:
        # eager records a node only for values that require grad; a trace records every op
        if self._node is not None and (self._rg or STATE.recorder is None):
            raise GraphError(with_location(
                f"{op}: cannot update {describe(self)} in place: it was computed by a recorded "
                f"op ({self._node.op.name}); only leaves can be updated in place"))
        if self._rg and STATE.grad_enabled:
            raise GraphError(with_location(
                f"{op}: in-place update of a leaf that requires grad ({describe(self)}) while "
                f"gradients are recorded; do it inside `with no_grad():`"))
        if not self._data.flags.writeable:
            raise GraphError(with_location(f"{op}: {describe(self)} is a read-only view"))

    def _inplace(self, op: str, ufunc: np.ufunc | None, other: Any,
                 alpha: float | Tensor = 1.0) -> Tensor:
        """``self <- ufunc(self, alpha * other)`` (``ufunc=None``: ``self <- other``)."""
        self._check_inplace(op)
        scaled = isinstance(alpha, Tensor) or alpha != 1.0
        if STATE.recorder is not None:  # traced: the update as ops, staged by the recorder
            other = self._coerce(other).mul(alpha) if scaled else self._coerce(other)
            new = other.broadcast_to(self.shape) if ufunc is None else \
                {np.subtract: self.sub, np.add: self.add, np.multiply: self.mul}[ufunc](other)
            return STATE.recorder.mutate(self, op, new)
        value = other._data if isinstance(other, Tensor) else np.asarray(other)
        if scaled:  # plain numpy: an optimizer's update records no graph node
            value = np.multiply(value, alpha._data if isinstance(alpha, Tensor) else alpha)
        try:
            if ufunc is None:
                np.copyto(self._data, value, casting="same_kind")
            else:
                ufunc(self._data, value, out=self._data, casting="same_kind")
        except (ValueError, TypeError) as e:
            raise ShapeError(with_location(f"{op}: {e}; operands {describe(self)}, "
                                           f"{describe(value)}")) from None
        self._vc[0] += 1
        return self

    def sub_(self, other: Any, alpha: float | Tensor = 1.0) -> Tensor:
        """``self -= alpha * other`` in place (a leaf, under ``no_grad``); ``alpha`` may be a
        0-d tensor (a learning rate that a compiled step takes as input)."""
        return self._inplace("sub_", np.subtract, other, alpha)

    def add_(self, other: Any, alpha: float | Tensor = 1.0) -> Tensor:
        """``self += alpha * other`` in place."""
        return self._inplace("add_", np.add, other, alpha)

    def mul_(self, other: Any) -> Tensor:
        """``self *= other`` in place."""
        return self._inplace("mul_", np.multiply, other)

    def assign(self, value: Any) -> Tensor:
        """Overwrite the values in place (broadcast to this shape, cast to this dtype)."""
        return self._inplace("assign", None, value)

    def zero_(self) -> Tensor:
        """Set every value to zero in place."""
        return self.assign(0)


def is_shared_constant(t: Tensor) -> bool:
    """Whether ``t`` is one of the cached Python-scalar operands (never updated in place)."""
    return id(t) in _constant_ids


class GradVersion(list):
    """The version counter of a gradient array that ``backward()`` made for the leaf ``owner``
    (a weak reference) and that no one else was given: the next ``backward()`` adds into it in
    place, as PyTorch accumulates into ``.grad``."""

    __slots__ = ("owner",)


def own_grad(leaf: Tensor, data: np.ndarray | Tensor) -> Tensor:
    """Give ``leaf`` the gradient ``data`` (a fresh array, or a tensor made for it alone), owned
    by the leaf; returns the gradient tensor."""
    version = GradVersion((0,))
    version.owner = _weakref(leaf)
    if isinstance(data, Tensor):
        data._vc = version
        grad = data
    else:
        grad = _wrap(data, None, False, version)
    leaf._grad = grad
    return grad


class GradState(enum.Enum):
    """What the next ``backward()`` does with a leaf's gradient."""

    NONE = "has no gradient"  # makes one
    OWNED = "has a gradient it owns"  # adds into it in place
    OTHER = "has a gradient it does not own"  # set by hand or shared: makes a new one


def grad_state(leaf: Tensor) -> GradState:
    """The ``GradState`` of ``leaf``'s gradient."""
    grad = leaf._grad
    if grad is None:
        return GradState.NONE
    version, data = grad._vc, grad._data
    if type(version) is GradVersion and version.owner() is leaf and grad._node is None \
            and data.base is None and data.flags.writeable:
        return GradState.OWNED
    return GradState.OTHER


def set_grad(t: Tensor, grad: Tensor | None) -> None:
    """Set ``t``'s gradient (``zero_grad`` and friends); a trace notes the write."""
    if STATE.recorder is not None:
        STATE.recorder.write_grad(t)
    t._grad = grad


def get_grad(tensor_id: int) -> Tensor | None:
    """The gradient of the tensor with this ``id()``, or None."""
    t = _by_id.get(tensor_id)
    return None if t is None else t.grad()


def clear_grad(tensor_id: int) -> None:
    """Reset the gradient of the tensor with this ``id()`` to None."""
    t = _by_id.get(tensor_id)
    if t is not None:
        set_grad(t, None)
