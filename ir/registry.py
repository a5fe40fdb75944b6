"""The op registry: one ``OpDef`` per operation holds everything the project knows about it.

An op's numpy kernel (``impl``), its shape/dtype rule (``infer``), its vector-Jacobian product
(``vjp``, written with other ops so it serves eager backward, the symbolic backward graph and
gradients of gradients) and its codegen template live together in the op's definition module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("elementwise", "reduction", "view", "matmul", "other")

#: ``vjp(g, out, inputs, attrs, needs) -> tuple of input gradients (None where not needed)``.
#: ``g`` and ``out`` and ``inputs`` are values with the op methods (eager tensors or symbolic
#: values); ``needs[i]`` says whether the gradient of input ``i`` is wanted.
VJP = Callable[[Any, Any, tuple, dict, tuple], tuple]


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """What a batching rule knows beyond its inputs: the batch size and ``vmap``'s
    ``randomness`` (``"error"``, ``"different"`` or ``"same"``)."""

    size: int
    randomness: str = "error"


#: ``batch(op, xs, batched, attrs, info) -> value``: ``op`` applied to every example at once
#: (``vmap``). An input ``xs[i]`` with ``batched[i]`` carries the batch at axis 0 and the
#: example's axes after it; an unbatched input is as every example sees it (at least one input
#: is batched). The result carries the batch at axis 0. Written with op methods, like VJPs.
Batch = Callable[["OpDef", tuple, tuple, dict, BatchInfo], Any]


@dataclass(frozen=True, slots=True, eq=False)
class OpDef:
    """Everything about one operation. See the module docstring."""

    name: str
    kind: str
    impl: Callable[..., np.ndarray]
    infer: Callable[..., tuple[tuple[int, ...], np.dtype]]
    vjp: VJP | None = None
    #: the batching rule (see ``Batch``); None: ``vmap`` refuses the op, naming it
    batch: Batch | None = None
    #: the VJP reads the input values (so an in-place change of an input breaks it)
    save_inputs: bool = False
    #: the VJP reads the output value
    save_output: bool = False
    #: binary ops whose gradient of one input reads only the other input: the input to save
    #: when only input 0 needs a gradient, and when only input 1 does (None: both), as PyTorch
    #: saves (``x * 2.0`` saves nothing of ``x``); None: save every input
    save_if_one_needs: tuple[int | None, int | None] | None = None
    #: inputs the VJP reads only by shape (with ``save_inputs``: not saved, so an in-place
    #: update of one before ``backward()`` is fine, as in PyTorch)
    shape_only: tuple[int, ...] = ()
    #: the output may share memory with input 0 (views): an in-place update of one shows in both
    aliases_input: bool = False
    #: the kernel checks its inputs and raises on bad ones (dead-code elimination keeps it)
    checks: bool = False
    #: the kernel acts beyond its result (an MPI collective: every rank must run it): passes
    #: never drop, merge or fold it
    effects: bool = False
    #: the op draws random numbers: ``vmap``'s ``randomness`` decides how it batches, so its
    #: batching rule runs even when no input is batched
    draws: bool = False
    #: codegen template (a Jinja expression) filled in by the compiler; None until it has one
    template: str | None = None
    doc: str = ""
    attrs: tuple[str, ...] = field(default=())

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None

    def __repr__(self) -> str:
        return f"<op {self.name}>"


@dataclass(frozen=True, slots=True)
class Operand:
    """An attribute item that stands for the op's input ``position`` (an index array inside an
    index tuple): printed ``%k``, rendered as that input's name by codegen."""

    position: int

    def __repr__(self) -> str:
        return f"%{self.position}"


_REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add ``op`` to the registry; names are unique."""
    if op.kind not in KINDS:
        raise ValueError(f"op {op.name}: unknown kind {op.kind!r}")
    if op.name in _REGISTRY:
        raise ValueError(f"op {op.name} is already registered")
    _REGISTRY[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    """The registered op called ``name``; a KeyError naming it otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}") from None


def all_ops() -> dict[str, OpDef]:
    """A copy of the registry: name -> OpDef."""
    return dict(_REGISTRY)
