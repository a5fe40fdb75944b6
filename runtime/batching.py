"""``vmap``: run a function on a batch of examples as one batched computation.

The function is traced once on the first example (the graph ``ap.trace`` would give, with value
reads and ``backward()`` refused), then the graph is re-run op by op on the whole batch: an op
none of whose inputs is batched runs as it is, any other through its batching rule
(``OpDef.batch``), which applies ops to every example at once. The re-run goes through eager
ops, so its result has gradients, nests in other transforms (``vmap(grad(f))``,
``vmap(vmap(f))``) and is recorded by ``ap.compile`` and ``ap.trace`` like any other ops.
In-place updates the function makes (a generator's counter, running statistics) are undone
after the trace and applied once by the re-run; one that differs per example is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GraphError, TransformError, with_location
from ..ir.graph import Graph, Node, Value
from ..ir.ops.batching import with_batch
from ..ir.ops.sources import CONSTANT
from ..ir.registry import BatchInfo
from . import pytree
from .recorder import Recorder
from .state import STATE, GradMode
from .tensor import Tensor, apply, array_of
from .tracing import GraphBuilder, fn_name, parameter_names, run_recorded

RANDOMNESS = ("error", "different", "same")


class _VmapRecorder(Recorder):
    """A staging recorder whose refusals speak of vmap."""

    inside = "a vmapped function"
    refuses_anomaly = False

    def check_read(self, what: str) -> None:
        raise TransformError(with_location(
            f"{what}: reading a tensor's value inside vmap is not possible (vmap runs the "
            f"function once on one example and then its ops on the whole batch, so a Python "
            f"decision on one example's value would hold for every example); use ap.where "
            f"for value-dependent results"))

    def backward(self, root: Any, leaf_grads: list) -> list:
        raise TransformError(with_location(
            "backward() inside vmap is not supported: per-example gradients are "
            "vmap(aprender.func.grad(loss)), which returns them instead of accumulating"))


def vmap(fn: Callable, in_axes: Any = 0, out_axes: Any = 0,
         randomness: str = "error") -> Callable:
    """``fn`` mapped over a batch axis of its arguments, as ``jax.vmap`` / ``torch.func.vmap``.

    ``in_axes``: an int (the batch axis of every positional argument), None (not batched), or
    a tuple with one entry per positional argument, each an int, None or a container of them
    matching the argument's structure. Keyword arguments are not batched. ``out_axes`` does the
    same for the result. ``randomness``: ``"error"`` refuses random draws, ``"different"``
    draws independently per example, ``"same"`` draws once for the whole batch.
    """
    if randomness not in RANDOMNESS:
        raise TransformError(f"vmap: randomness must be one of {RANDOMNESS}, got "
                             f"{randomness!r}")

    @functools.wraps(fn)
    def batched(*args: Any, **kwargs: Any) -> Any:
        return _Call(fn, in_axes, out_axes, randomness).run(args, kwargs)

    return batched


def tensor_leaves(value: Any, name: str) -> tuple[list[Tensor], Any]:
    """The leaves and structure of what a transformed function returned; a TransformError
    naming ``name`` when a leaf is not a tensor."""
    leaves: list = []
    structure = pytree.flatten(value, leaves)
    for leaf in leaves:
        if not isinstance(leaf, Tensor):
            raise TransformError(with_location(
                f"{name}: the function returned a {type(leaf).__name__}; a transformed "
                f"function returns tensors (or containers of them)"))
    return leaves, structure


def _prefix_axes(spec: Any, value: Any, where: str, out: list) -> None:
    """Append one axis (int or None) per leaf of ``value``: ``spec`` is an axis for all of
    them, or a container with ``value``'s structure."""
    if spec is None or isinstance(spec, int):
        leaves: list = []
        pytree.flatten(value, leaves)
        out.extend([spec] * len(leaves))
        return
    pairs = pytree.children_like(value, spec)
    if not pairs:
        raise TransformError(with_location(
            f"vmap: {where} is {spec!r}, which does not match the structure of "
            f"{type(value).__name__} value (give an int, None, or a container of them shaped "
            f"like the value)"))
    for child, child_spec in pairs:
        _prefix_axes(child_spec, child, where, out)


def leaf_axes(in_axes: Any, args: tuple) -> list[int | None]:
    """One batch axis (or None) per leaf of ``args``, from ``in_axes``."""
    out: list = []
    if in_axes is None or isinstance(in_axes, int):
        _prefix_axes(in_axes, args, "in_axes", out)
        return out
    if not isinstance(in_axes, tuple | list) or len(in_axes) != len(args):
        raise TransformError(with_location(
            f"vmap: in_axes must be an int, None, or a tuple with one entry per positional "
            f"argument; got {in_axes!r} for {len(args)} arguments"))
    for i, (spec, arg) in enumerate(zip(in_axes, args, strict=True)):
        _prefix_axes(spec, arg, f"in_axes[{i}]", out)
    return out


def _quiet(make: Callable[[], Any]) -> Any:
    """``make()`` with no recorder: what it makes belongs to no trace."""
    saved = STATE.recorder
    STATE.recorder = None
    try:
        return make()
    finally:
        STATE.recorder = saved


def move_axis(t: Any, source: int, dest: int) -> Any:
    """``t`` with axis ``source`` moved to position ``dest`` (a transpose; itself if equal)."""
    if source == dest:
        return t
    order = [i for i in range(t.ndim) if i != source]
    order.insert(dest, source)
    return t.transpose(order)


@dataclass
class _Traced:
    graph: Graph
    builder: GraphBuilder
    outputs: list[Value]
    structure: Any


class _Call:
    """One call of a vmapped function."""

    def __init__(self, fn: Callable, in_axes: Any, out_axes: Any, randomness: str) -> None:
        self.fn, self.in_axes, self.out_axes = fn, in_axes, out_axes
        self.randomness = randomness
        self.name = fn_name(fn)

    def run(self, args: tuple, kwargs: dict) -> Any:
        leaves: list = []
        structure = pytree.flatten(args, leaves)
        names = pytree.leaf_names(args, {}, parameter_names(self.fn))
        axes = self._axes(leaves, names, leaf_axes(self.in_axes, args))
        size = self._size(leaves, names, axes)
        examples = {i: self._example(leaves[i], a) for i, a in enumerate(axes) if a is not None}
        batch = {i: move_axis(leaves[i] if isinstance(leaves[i], Tensor)
                              else Tensor(leaves[i]), a, 0)
                 for i, a in enumerate(axes) if a is not None}
        call_leaves = [examples.get(i, x) for i, x in enumerate(leaves)]
        call_args = pytree.rebuild_from(structure, iter(call_leaves))
        traced = self._trace(call_args, kwargs, call_leaves, names)
        info = BatchInfo(size, self.randomness)
        self.leaves, self.axes, self.size = leaves, axes, size
        results = self._replay(traced, batch, info)
        return self._results(traced, results, size)

    # --- arguments -----------------------------------------------------------------------------
    def _axes(self, leaves: list, names: list[str], axes: list) -> list[int | None]:
        out = []
        for leaf, name, axis in zip(leaves, names, axes, strict=True):
            if axis is None:
                out.append(None)
                continue
            array = array_of(leaf)
            if array is None:
                raise TransformError(with_location(
                    f"vmap: in_axes gives {name} (a {type(leaf).__name__}) the batch axis "
                    f"{axis}, but only tensors and arrays can be batched; give it None"))
            if not -array.ndim <= axis < array.ndim:
                raise TransformError(with_location(
                    f"vmap: batch axis {axis} is out of range for {name} of shape "
                    f"{list(array.shape)}"))
            out.append(axis % array.ndim)
        if all(a is None for a in out):
            raise TransformError(with_location(
                f"vmap: no argument of {self.name} is batched (every in_axes entry is None)"))
        return out

    @staticmethod
    def _size(leaves: list, names: list[str], axes: list) -> int:
        sizes = {name: array_of(leaf).shape[a]
                 for leaf, name, a in zip(leaves, names, axes, strict=True) if a is not None}
        if len(set(sizes.values())) > 1:
            listed = ", ".join(f"{n}: {s}" for n, s in sizes.items())
            raise TransformError(with_location(
                f"vmap: the batched arguments have different batch sizes ({listed})"))
        return next(iter(sizes.values()))

    @staticmethod
    def _example(leaf: Any, axis: int) -> Tensor:
        """The first example of a batched leaf (zeros for an empty batch, which is traced
        like any other): a fresh tensor, requiring grad when the leaf does, so the trace
        keeps every gradient path the batch may need."""
        def make() -> Tensor:
            array = array_of(leaf)
            t = Tensor(np.take(array, 0, axis=axis) if array.shape[axis] else
                       np.zeros(np.delete(array.shape, axis), dtype=array.dtype))
            return t.requires_grad() if isinstance(leaf, Tensor) and leaf._rg else t
        return _quiet(make)

    # --- trace and re-run ----------------------------------------------------------------------
    def _trace(self, args: Any, kwargs: dict, leaves: list, names: list[str]) -> _Traced:
        rec = _VmapRecorder(staging=True)
        arrays = {id(x): name for x, name in zip(leaves, names, strict=True)
                  if isinstance(x, np.ndarray)}
        arg_ids = {id(x): i for i, x in enumerate(leaves) if isinstance(x, Tensor)}
        try:
            result = run_recorded(self.fn, args, kwargs, rec)
            builder = GraphBuilder(f"vmap({self.name})", rec, arrays, arg_ids, names)
            builder.replay(rec.events, None)
            out_leaves, structure = tensor_leaves(result, "vmap")
            outputs = [builder.value_of(t) for t in out_leaves]
        finally:
            rec.undo()
        return _Traced(builder.graph, builder, outputs, structure)

    def _replay(self, traced: _Traced, batch: dict[int, Tensor],
                info: BatchInfo) -> list[tuple[Tensor, bool]]:
        builder = traced.builder
        env: dict[int, tuple[Tensor, bool]] = {}
        for k, value in enumerate(traced.graph.inputs):
            source = builder.sources[builder.inputs[k].source]
            if source.index in batch and builder.inputs[k].part == "data":
                env[id(value)] = (batch[source.index], True)
            else:
                t = builder.tensor_of_input[k]
                env[id(value)] = (t if isinstance(t, Tensor) else Tensor(t), False)
        for node in traced.graph.nodes:
            env[id(node.out)] = self._run_node(node, env, info)
        for position, value in builder.updated.items():
            self._update(builder, position, env[id(value)])
        return [env[id(v)] for v in traced.outputs]

    def _run_node(self, node: Node, env: dict, info: BatchInfo) -> tuple[Tensor, bool]:
        op = node.op
        if op is CONSTANT:
            return Tensor(node.attrs["value"]), False
        xs = tuple(env[id(v)][0] for v in node.inputs)
        flags = tuple(env[id(v)][1] for v in node.inputs)
        if True not in flags and not op.draws:
            return apply(op, xs, node.attrs), False
        if op.batch is None:
            raise TransformError(
                f"vmap: op {op.name} has no batching rule, so {self.name} cannot be vmapped "
                f"(at {node.src or 'an internal op'})")
        try:
            out = op.batch(op, xs, flags, node.attrs, info)
        except TransformError as e:
            raise TransformError(f"{e} (at {node.src or 'an internal op'})") from None
        want = (info.size, *node.out.shape)
        if tuple(out.shape) != want or out.dtype != node.out.dtype:
            raise GraphError(f"vmap: the batching rule of {op.name} gave "
                             f"{out.dtype}{list(out.shape)}, expected "
                             f"{node.out.dtype}{list(want)}")
        return out, True

    def _update(self, builder: GraphBuilder, position: int, new: tuple[Tensor, bool]) -> None:
        """Apply an in-place update the function made: to a batched argument tensor (each
        example's part, as the updates of a loop would), or to an object outside it when the
        update is the same for the whole batch."""
        value, per_example = new
        name = builder.graph.inputs[position].name
        index = builder.sources[builder.inputs[position].source].index
        if index >= 0 and self.axes[index] is not None:
            leaf = self.leaves[index]
            if isinstance(leaf, Tensor):  # (an array argument was copied into the example)
                moved = move_axis(with_batch(value, per_example, self.size), 0,
                                  self.axes[index])
                self._assign(leaf, moved, name)
            return
        target = builder.tensor_of_input[position]
        if per_example or builder.inputs[position].part != "data" or \
                not isinstance(target, Tensor):
            raise TransformError(with_location(
                f"vmap: {self.name} updates {name} in place with a value that depends on the "
                f"example; vmap can only apply updates to outside tensors that are the same "
                f"for the whole batch (return the per-example values instead)"))
        self._assign(target, value, name)

    def _assign(self, target: Tensor, value: Tensor, name: str) -> None:
        if value._rg:
            raise TransformError(with_location(
                f"vmap: {self.name} updates {name} in place with a value that needs a "
                f"gradient; vmap applies in-place updates without one"))
        with GradMode(False):
            target.assign(value)

    def _results(self, traced: _Traced, results: list[tuple[Tensor, bool]], size: int) -> Any:
        axes: list = []
        skeleton = pytree.rebuild_from(traced.structure, iter(range(len(results))))
        _prefix_axes(self.out_axes, skeleton, "out_axes", axes)
        out = []
        for (t, per_example), axis in zip(results, axes, strict=True):
            if axis is None:
                if per_example:
                    raise TransformError(with_location(
                        f"vmap: out_axes is None for an output of {self.name} that differs "
                        f"per example"))
                out.append(t)
                continue
            t = with_batch(t, per_example, size)
            if not -t.ndim <= axis < t.ndim:
                raise TransformError(with_location(
                    f"vmap: out_axes {axis} is out of range for an output with {t.ndim} axes"))
            out.append(move_axis(t, 0, axis % t.ndim))
        return pytree.rebuild_from(traced.structure, iter(out))
