"""Derivative transforms of functions: ``grad``, ``value_and_grad``, ``vjp``, ``jvp``,
``jacrev``, ``jacfwd`` and ``hessian`` (``aprender.func``, as in JAX and ``torch.func``).

Each transform runs the function eagerly on aliases of the differentiated arguments and asks
the engine for gradients with other ops (``create_graph`` while grad mode is on), so its result
is itself differentiable: transforms nest (``grad(grad(f))``), compose with ``vmap`` and are
recorded by ``ap.compile`` and ``ap.trace`` like any other ops.

Forward mode is the transpose of reverse mode: the VJP ``u -> J^T u`` is linear in ``u``, so
differentiating ``<J^T u, t>`` with respect to ``u`` gives ``J t``. ``jvp`` builds the VJP at a
zero ``u`` with its graph and differentiates that, so every op's forward derivative comes from
its one VJP rule. One ``jvp`` costs a forward and two reverse sweeps whatever the tangent;
``jacfwd`` pushes all basis tangents through as one ``vmap``ed computation, and under
``ap.compile`` the sweep at ``u = 0`` is dead code that the compiler removes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import TransformError, describe, with_location
from . import engine, pytree
from .batching import tensor_leaves, vmap
from .state import STATE, GradMode
from .tensor import Tensor


def _argnums(argnums: int | Sequence[int], count: int, name: str) -> tuple[tuple[int, ...], bool]:
    """``(positions, single)``: the differentiated argument positions, and whether
    ``argnums`` was one int (the result is then not a tuple)."""
    single = isinstance(argnums, int)
    positions = (argnums,) if single else tuple(argnums)
    if not positions:
        raise TransformError(with_location(f"{name}: argnums is empty"))
    for p in positions:
        if not isinstance(p, int) or not -count <= p < count:
            raise TransformError(with_location(
                f"{name}: argnums {argnums!r} is out of range for {count} positional "
                f"arguments"))
    positions = tuple(p % count for p in positions)
    if len(set(positions)) != len(positions):
        raise TransformError(with_location(f"{name}: argnums {argnums!r} names an argument "
                                           f"twice; each must appear once"))
    return positions, single


def _floating(x: Any, name: str, where: str) -> Tensor:
    """Argument leaf ``x`` as a floating tensor; a TransformError for anything else."""
    t = x if isinstance(x, Tensor) else Tensor(x) if isinstance(x, np.ndarray | float) else None
    if t is None or t.dtype.kind != "f":
        raise TransformError(with_location(
            f"{name}: {where} is {describe(x) if t is not None else type(x).__name__}; only "
            f"floating tensors, arrays and floats can be differentiated"))
    return t


def _alias(t: Tensor) -> Tensor:
    """A tensor standing for ``t`` that the transform differentiates: connected to ``t`` when
    it requires grad (so outer transforms see through), else a fresh leaf."""
    return t.reshape(t.shape) if t._rg else t.detach().requires_grad()


class _Primals:
    """The differentiated arguments of one call: aliases for their leaves (with ``alias``;
    else the leaves as tensors), and the call's arguments with them in place."""

    def __init__(self, args: tuple, positions: tuple[int, ...], name: str,
                 alias: bool = True) -> None:
        self.positions = positions
        self.structures: list[Any] = []
        self.leaves: list[list[Tensor]] = []
        call = list(args)
        for p in positions:
            leaves: list = []
            structure = pytree.flatten(args[p], leaves)
            aliases = [_floating(x, name, f"argument {p}") for x in leaves]
            if alias:
                aliases = [_alias(t) for t in aliases]
            call[p] = pytree.rebuild_from(structure, iter(aliases))
            self.structures.append(structure)
            self.leaves.append(aliases)
        self.args = tuple(call)

    @property
    def flat(self) -> list[Tensor]:
        return [t for leaves in self.leaves for t in leaves]

    def rebuild(self, flat: list[Tensor], single: bool) -> Any:
        """Per-leaf results (in ``flat`` order) in the arguments' structures."""
        it = iter(flat)
        parts = tuple(pytree.rebuild_from(s, it) for s in self.structures)
        return parts[0] if single else parts


def _split_aux(out: Any, has_aux: bool, name: str) -> tuple[Any, Any]:
    if not has_aux:
        return out, None
    if not isinstance(out, tuple) or len(out) != 2:
        raise TransformError(with_location(
            f"{name}: with has_aux=True the function must return (output, aux), got "
            f"{type(out).__name__}"))
    return out


def _zeros(t: Tensor) -> Tensor:
    return Tensor(np.zeros(t.shape, dtype=t.dtype))


def _reaches_outside(outputs: list[Tensor], fresh: set[int]) -> bool:
    """Whether a tensor that requires grad and was not made by this transform (``fresh``:
    ids of its own leaves) feeds ``outputs``, so a gradient from outside may flow through."""
    stack, seen = list(outputs), set()
    while stack:
        t = stack.pop()
        if not t._rg or id(t) in fresh:
            continue
        node = t._node
        if node is None:
            return True
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node.inputs)
    return False


def pullback(outputs: list[Tensor], cotangents: list[Tensor], inputs: list[Tensor],
             create_graph: bool) -> list[Tensor]:
    """``sum_i J_i^T c_i`` for each of ``inputs`` (zeros where nothing depends on it)."""
    pairs = [(o, c) for o, c in zip(outputs, cotangents, strict=True) if o._rg]
    if not pairs:
        return [_zeros(x) for x in inputs]
    if len(pairs) == 1:
        root, seed = pairs[0]
    else:  # one scalar whose gradient with respect to each output is its cotangent
        root, seed = functools.reduce(lambda a, b: a.add(b),
                                      [o.mul(c).sum() for o, c in pairs]), None
    grads = engine.grad(root, inputs, seed, create_graph=create_graph)
    return [_zeros(x) if g is None else g for g, x in zip(grads, inputs, strict=True)]


def _check_cotangents(name: str, outputs: list[Tensor], given: list[Any]) -> list[Tensor]:
    out = []
    for o, c in zip(outputs, given, strict=True):
        c = c if isinstance(c, Tensor) else Tensor(np.asarray(c, dtype=o.dtype))
        if tuple(c.shape) != tuple(o.shape):
            raise TransformError(with_location(
                f"{name}: {describe(c)} does not match the output {describe(o)}"))
        out.append(c if c.dtype == o.dtype else c.astype(o.dtype))
    return out


class _Linearized:
    """``fn`` run once with aliases for its differentiated arguments (``positions``), kept
    for pulling cotangents back to them. ``connected``: grad mode is on and the outputs
    depend on a tensor from outside that requires grad, so results keep a graph (an outer
    transform or ``backward()`` may differentiate them); otherwise they are plain values, as
    ``torch.func`` gives."""

    def __init__(self, fn: Callable, args: tuple, kwargs: dict, positions: tuple[int, ...],
                 has_aux: bool, name: str) -> None:
        enabled = STATE.grad_enabled
        with GradMode(True):
            self.primals = _Primals(args, positions, name)
            self.out, self.aux = _split_aux(fn(*self.primals.args, **kwargs), has_aux, name)
        self.outputs, self.structure = tensor_leaves(self.out, name)
        fresh = {id(t) for t in self.primals.flat if t._node is None}
        self.connected = enabled and _reaches_outside(self.outputs, fresh)

    def value(self) -> Any:
        """The outputs: as computed when connected, else without their graph."""
        if self.connected:
            return self.out
        return pytree.rebuild_from(self.structure, iter([o.detach() for o in self.outputs]))

    def keeps_graph(self, cotangents: list[Tensor]) -> bool:
        """Whether gradients pulled back with ``cotangents`` keep a graph: grad mode is on and
        the outputs are connected or a cotangent requires grad."""
        return STATE.grad_enabled and (self.connected or any(c._rg for c in cotangents))

    def pull(self, cotangents: list[Tensor]) -> list[Tensor]:
        """Gradients for the differentiated leaves (with a graph as ``keeps_graph`` says)."""
        with GradMode(True):
            return pullback(self.outputs, cotangents, self.primals.flat,
                            self.keeps_graph(cotangents))


# --- reverse mode ------------------------------------------------------------------------------

def value_and_grad(fn: Callable, argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable:
    """``fn`` returning ``(value, gradient)``: the gradient of its one-element output with
    respect to argument ``argnums`` (a tuple of them for a tuple), shaped like the arguments
    (tensors, arrays, floats, or lists/tuples/dicts of them). With ``has_aux``, ``fn`` returns
    ``(output, aux)`` and the value is ``(output, aux)``."""

    @functools.wraps(fn)
    def transformed(*args: Any, **kwargs: Any) -> Any:
        positions, single = _argnums(argnums, len(args), "grad")
        lin = _Linearized(fn, args, kwargs, positions, has_aux, "grad")
        out = lin.out
        if not isinstance(out, Tensor) or out.size != 1 or out.dtype.kind != "f":
            raise TransformError(with_location(
                f"grad: the function must return a one-element floating tensor, got "
                f"{describe(out) if isinstance(out, Tensor) else type(out).__name__}; use "
                f"vjp or jacrev for other outputs"))
        grads = lin.pull([Tensor(np.ones(out.shape, dtype=out.dtype))])
        value = (lin.value(), lin.aux) if has_aux else lin.value()
        return value, lin.primals.rebuild(grads, single)

    return transformed


def grad(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """``fn``'s gradient function (see ``value_and_grad``); with ``has_aux`` it returns
    ``(gradient, aux)``."""
    both = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn)
    def transformed(*args: Any, **kwargs: Any) -> Any:
        value, grads = both(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return transformed


def vjp(fn: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """``(output, vjp_fn)`` (and ``aux`` with ``has_aux``): ``vjp_fn(cotangent)`` gives one
    gradient per primal, each shaped like it; the cotangent is shaped like the output."""
    if not primals:
        raise TransformError(with_location("vjp: give at least one primal"))
    lin = _Linearized(fn, primals, {}, tuple(range(len(primals))), has_aux, "vjp")

    def vjp_fn(cotangent: Any) -> tuple:
        given = pytree.flatten_like(lin.out, cotangent)
        if given is None:
            raise TransformError(with_location(
                "vjp: the cotangent's structure does not match the output's"))
        return lin.primals.rebuild(lin.pull(_check_cotangents("vjp", lin.outputs, given)),
                                   False)

    return (lin.value(), vjp_fn, lin.aux) if has_aux else (lin.value(), vjp_fn)


# --- forward mode ------------------------------------------------------------------------------

def jvp(fn: Callable, primals: Sequence[Any], tangents: Sequence[Any],
        has_aux: bool = False) -> tuple:
    """``(output, tangent_out)`` (and ``aux``): the derivative of ``fn`` at ``primals`` in the
    direction ``tangents`` (one per primal, shaped like it), by transposing the VJP (see the
    module docstring)."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents) or not primals:
        raise TransformError(with_location(
            f"jvp: give one tangent per primal, got {len(primals)} primals and "
            f"{len(tangents)} tangents"))
    flat_t = pytree.flatten_like(primals, tangents)
    if flat_t is None:
        raise TransformError(with_location(
            "jvp: the tangents' structure does not match the primals' (one tangent per primal "
            "leaf, in containers of the same kinds and keys)"))
    lin = _Linearized(fn, primals, {}, tuple(range(len(primals))), has_aux, "jvp")
    flat_t = _check_cotangents("jvp", lin.primals.flat, flat_t)
    create = lin.keeps_graph(flat_t)
    # integer and bool outputs have no derivative: their tangent is zero
    floating = [o for o in lin.outputs if o.dtype.kind == "f"]
    with GradMode(True):
        us = [_zeros(o).requires_grad() for o in floating]
        pulled = pullback(floating, us, lin.primals.flat, True)
        found = iter(pullback(pulled, flat_t, us, create))
    tangent_out = [next(found) if o.dtype.kind == "f" else _zeros(o) for o in lin.outputs]
    out = pytree.rebuild_from(lin.structure, iter(tangent_out))
    return (lin.value(), out, lin.aux) if has_aux else (lin.value(), out)


# --- Jacobians ---------------------------------------------------------------------------------

def _basis(t: Tensor) -> Tensor:
    """The rows of the identity, each shaped like ``t``: ``[t.size, *t.shape]``."""
    n = t.size
    return Tensor(np.eye(n, dtype=t.dtype).reshape((n, *t.shape)))


def jacrev(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Jacobian of ``fn`` by reverse mode: one vmapped VJP over the rows of the identity
    per output. Each block has shape ``output.shape + argument.shape``; blocks are nested as
    the outputs, then as ``argnums``."""

    @functools.wraps(fn)
    def transformed(*args: Any, **kwargs: Any) -> Any:
        positions, single = _argnums(argnums, len(args), "jacrev")
        lin = _Linearized(fn, args, kwargs, positions, has_aux, "jacrev")
        flat, outputs = lin.primals.flat, lin.outputs
        blocks = []
        for k, o in enumerate(outputs):
            def row(u: Tensor, k: int = k) -> list[Tensor]:
                return lin.pull([u if j == k else _zeros(x) for j, x in enumerate(outputs)])
            basis = _basis(o)
            rows = vmap(row)(basis) if o.size != 1 else \
                [r.reshape((1, *r.shape)) for r in row(basis.reshape(o.shape))]
            blocks.append(lin.primals.rebuild(
                [r.reshape((*o.shape, *x.shape)) for r, x in zip(rows, flat, strict=True)],
                single))
        jac = pytree.rebuild_from(lin.structure, iter(blocks))
        return (jac, lin.aux) if has_aux else jac

    return transformed


def jacfwd(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False, *,
           randomness: str = "error") -> Callable:
    """The Jacobian of ``fn`` by forward mode: one vmapped JVP over the basis tangents of all
    differentiated argument leaves together, so ``fn`` runs once. Shapes and nesting as
    ``jacrev``; ``randomness`` as ``vmap``'s."""

    @functools.wraps(fn)
    def transformed(*args: Any, **kwargs: Any) -> Any:
        positions, single = _argnums(argnums, len(args), "jacfwd")
        primals = _Primals(args, positions, "jacfwd", alias=False)
        flat = primals.flat
        sizes = [x.size for x in flat]
        offsets = np.cumsum([0, *sizes])
        total = int(offsets[-1])
        eye = np.eye(total)
        bases = [Tensor(eye[:, offsets[i]:offsets[i + 1]].reshape((total, *x.shape))
                        .astype(x.dtype)) for i, x in enumerate(flat)]

        def at(*xs: Tensor) -> Any:
            call = list(args)
            it = iter(xs)
            for p, s in zip(positions, primals.structures, strict=True):
                call[p] = pytree.rebuild_from(s, it)
            return fn(*call, **kwargs)

        def push(*tangents: Tensor) -> tuple:
            return jvp(at, flat, list(tangents), has_aux=has_aux)

        found = vmap(push, out_axes=(None, 0, None)[:3 if has_aux else 2],
                     randomness=randomness)(*bases)
        out, tangent_out = found[:2]
        aux = found[2] if has_aux else None
        outputs, structure = tensor_leaves(out, "jacfwd")
        blocks = []
        for o, column in zip(outputs, tensor_leaves(tangent_out, "jacfwd")[0], strict=True):
            rows = column.reshape((total, o.size)).transpose((1, 0))
            blocks.append(primals.rebuild(
                [rows[:, offsets[i]:offsets[i + 1]].reshape((*o.shape, *x.shape))
                 for i, x in enumerate(flat)], single))
        jac = pytree.rebuild_from(structure, iter(blocks))
        return (jac, aux) if has_aux else jac

    return transformed


def hessian(fn: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Hessian of ``fn``'s one-element output: ``jacfwd(jacrev(fn))``."""
    return jacfwd(jacrev(fn, argnums), argnums)
