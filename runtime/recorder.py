"""The trace protocol in one place: what eager code reports while a function is traced.

While ``STATE.recorder`` is set, ``runtime.tensor`` and ``runtime.engine`` call one hook each
where something happens that a graph must know about, and the recorder appends a typed event:

- ``OpEvent``: an op ran (its tape node, the tensor it made, the grad mode at that moment);
- ``NewTensor``: a tensor was made without an op (``Tensor(...)``, a factory, a constant);
- ``Mutation``: an in-place update ``target <- new`` (``sub_``, ``assign``, ...);
- ``Backward``: ``loss.backward()`` gave each leaf a gradient placeholder;
- ``GradRead``: ``leaf.grad()`` was read.

In-place updates run eagerly (so the trace sees real values), are recorded, and ``undo()``
puts every touched array, version counter and gradient back afterwards, so tracing changes
no user tensor. ``compile`` uses a staging recorder, which also stages ``backward()`` (each
leaf's gradient becomes a placeholder, accumulated in place or replaced exactly as the eager
engine would) and refuses value reads (``item()``, ``bool(t)``); ``ap.trace`` allows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CompileError, GraphError, ShapeError, describe, with_location
from ..ir.graph import Node
from .state import STATE, GradMode
from .tensor import GradState, Tensor, _wrap, grad_state, is_shared_constant, own_grad


@dataclass(slots=True)
class OpEvent:
    node: Node
    out: Any  # the Tensor the op returned
    grad_enabled: bool


@dataclass(slots=True)
class NewTensor:
    tensor: Any
    #: what it was made from: a Tensor (a copy of it), a numpy array (maybe the user's), or
    #: None (Python literals: ``data`` holds the values)
    source: Any
    data: np.ndarray


@dataclass(slots=True)
class Mutation:
    target: Any
    new: Any
    op: str


@dataclass(slots=True)
class Backward:
    root: Any
    #: ``(leaf, gradient placeholder)`` for every leaf that received a gradient
    grads: list[tuple[Any, Any]]


@dataclass(slots=True)
class GradRead:
    leaf: Any
    grad: Any
    #: whether this is the gradient the leaf had before the trace (nothing set it since)
    original: bool
    #: ``grad_state`` of the leaf when read
    state: GradState


Event = OpEvent | NewTensor | Mutation | Backward | GradRead


class NumpyArgument(Tensor):
    """What a compiled function sees for a numpy-array argument while it is traced: a tensor
    (so its ops are recorded and a later call's array is read anew) that refuses the methods
    whose numpy meaning differs from the tensor method of the same name."""

    __slots__ = ()

    @classmethod
    def stand_in(cls, array: np.ndarray) -> NumpyArgument:
        t = Tensor._as_input(array)
        t.__class__ = cls
        return t

    def _refuse(self, name: str, numpy_meaning: str) -> CompileError:
        return CompileError(with_location(
            f"compile: {name}() on a numpy argument: numpy's {name} {numpy_meaning}, while "
            f"inside a compiled function the argument is traced as a tensor, whose {name} "
            f"differs; call np.{name}(x, ...) (numpy's meaning, traced) or convert with "
            f"ap.Tensor(x) first"))

    def std(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse("std", "divides by N (ddof=0)")

    def var(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse("var", "divides by N (ddof=0)")

    def repeat(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse("repeat", "repeats each element")

    def view(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse("view", "reinterprets the dtype")

    def cumsum(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse("cumsum", "flattens without an axis")

    def __getattr__(self, name: str) -> Any:  # numpy attributes tensors lack (ravel, copy, ...)
        if name.startswith("__"):  # protocol probes (copy, numpy's interfaces): plain absence
            raise AttributeError(name)  # (other names refuse: hasattr() must not answer False)
        raise CompileError(with_location(
            f"compile: .{name} on a numpy argument: inside a compiled function the argument is "
            f"traced as a tensor, which has no {name}; call np.{name}(x, ...) instead"))

    def _no_operator(self, *args: Any) -> Any:
        raise CompileError(with_location(
            "compile: this operator (%, //, &, |, ^, ~, <<, >>) on a numpy argument has no "
            "tensor op; compute it outside the compiled function and pass the result"))

    __mod__ = __rmod__ = __floordiv__ = __rfloordiv__ = _no_operator
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = _no_operator
    __invert__ = __lshift__ = __rshift__ = _no_operator


def _from_numpy_arguments(inputs: tuple) -> bool:
    """Whether an op read only numpy arguments (and Python numbers), as eager numpy code."""
    found = False
    for x in inputs:
        if type(x) is NumpyArgument:
            found = True
        elif not is_shared_constant(x):
            return False
    return found


@dataclass
class Recorder:
    """Collects the events of one trace. In-place updates are applied, recorded and undone by
    ``undo()``; ``staging`` (compile) also stages ``backward()`` and refuses value reads."""

    staging: bool
    events: list[Event] = field(default_factory=list)
    #: ids of tensors made during the trace (kept alive by ``events``, so ids stay unique)
    born: set[int] = field(default_factory=set)
    _arrays: dict[int, tuple[Any, np.ndarray, int]] = field(default_factory=dict)
    _grads: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    _written: set[int] = field(default_factory=set)

    # --- hooks called by eager code ------------------------------------------------------------
    #: what the traced code is inside, for messages
    inside = "a compiled function"
    #: whether ``detect_anomaly()`` inside the trace is refused (generated code does not check
    #: each op; a vmap's re-run does, as eager)
    refuses_anomaly = True

    def op(self, node: Node, out: Any) -> None:
        if STATE.anomaly and self.staging and self.refuses_anomaly:
            raise CompileError(with_location(
                "detect_anomaly() inside a compiled function is not supported (generated code "
                "does not check each op); enter it around the call instead: the call then "
                "runs eagerly, checking every op"))
        self.born.add(id(out))
        self.events.append(OpEvent(node, out, STATE.grad_enabled))
        if _from_numpy_arguments(node.inputs):  # eager computed a numpy array here
            out.__class__ = NumpyArgument

    def new_tensor(self, t: Any, source: Any) -> None:
        self.born.add(id(t))
        self.events.append(NewTensor(t, source, np.array(t._data, copy=True)))

    def mutate(self, target: Any, op: str, new: Any) -> Any:
        """``target <- new`` inside a trace: applied eagerly, recorded, undone later."""
        node = target._node
        if node is not None and node.op.aliases_input:
            raise GraphError(with_location(
                f"{op}: an in-place update of a view ({node.op.name} of another tensor) inside "
                f"{self.inside} is not supported; update the tensor it views instead"))
        if new.shape != target.shape:
            raise ShapeError(with_location(f"{op}: result {describe(new)} does not fit "
                                           f"{describe(target)}"))
        if new.dtype != target.dtype:
            new = new.astype(target.dtype)
        self.before_grad_change(target)
        if id(target) not in self._arrays:
            self._arrays[id(target)] = (target, target._data.copy(), target._vc[0])
        np.copyto(target._data, new._data)
        target._vc[0] += 1
        self.events.append(Mutation(target, new, op))
        return target

    def backward(self, root: Any, leaf_grads: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        """Set each leaf's gradient as eager ``backward()`` would, to placeholders the graph
        builder maps to the symbolic gradients; returns the ``(leaf, placeholder)`` pairs."""
        made_here = [leaf for leaf, _ in leaf_grads if id(leaf) in self.born]
        if made_here and self.staging:
            raise CompileError(with_location(
                f"backward: a tensor made inside the compiled function with requires_grad() "
                f"({describe(made_here[0])}) would get a gradient; its gradient is not kept "
                f"across compiled calls. Make it outside and pass it in (a parameter), or keep "
                f"this step eager"))
        pairs = []
        with GradMode(False):
            STATE.recorder = None  # placeholders stand for the gradients: no events of their own
            try:
                for leaf, g in leaf_grads:
                    placeholder = _wrap(np.array(g._data, copy=True), None, False)
                    self.born.add(id(placeholder))
                    pairs.append((leaf, placeholder))
            finally:
                STATE.recorder = self
            self.events.append(Backward(root, pairs))
            for leaf, placeholder in pairs:  # as engine._accumulate_into does
                old = self.read_grad(leaf)
                state = grad_state(leaf)
                self._written.add(id(leaf))
                if old is None:
                    own_grad(leaf, placeholder)
                elif state is GradState.OWNED:
                    self.mutate(old, "backward", old.add(placeholder))
                else:
                    own_grad(leaf, Tensor(old.add(placeholder)))
        return pairs

    def read_grad(self, leaf: Any) -> Any:
        """``leaf._grad``, recorded as read (as it was before the trace, its existence
        becomes a guard)."""
        self.before_grad_change(leaf)
        grad = leaf._grad
        self.events.append(GradRead(leaf, grad, id(leaf) not in self._written,
                                    grad_state(leaf)))
        return grad

    def write_grad(self, leaf: Any) -> None:
        """``leaf._grad`` is about to be set (``zero_grad``)."""
        self.before_grad_change(leaf)
        self._written.add(id(leaf))

    def check_read(self, what: str) -> None:
        """Reading a value: ``ap.trace`` records the path taken; ``compile`` refuses."""
        if not self.staging:
            return
        raise GraphError(with_location(
            f"{what}: reading a tensor's value inside a compiled function is not possible (the "
            f"value is not known when the code is generated); move the read outside the "
            f"compiled function, e.g. return the tensor and call .item() on the result"))

    # --- undo ----------------------------------------------------------------------------------
    def before_grad_change(self, t: Any) -> None:
        if id(t) not in self._grads:
            self._grads[id(t)] = (t, t._grad)

    def original_grad(self, t: Any) -> Any:
        """``t``'s gradient before the trace (as it is now if the trace never touched it)."""
        entry = self._grads.get(id(t))
        return t._grad if entry is None else entry[1]

    def grad_leaves(self) -> list[Any]:
        """Every tensor whose gradient the trace read or may have changed."""
        return [t for t, _ in self._grads.values()]

    def undo(self) -> None:
        """Put back every array, version counter and gradient the trace changed."""
        for t, data, version in self._arrays.values():
            np.copyto(t._data, data)
            t._vc[0] = version
        for t, grad in self._grads.values():
            t._grad = grad
