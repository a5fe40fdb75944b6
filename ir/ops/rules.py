"""Helpers shared by op definitions: shape/dtype rules and the one un-broadcast helper."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from ...errors import ShapeError, describe, with_location


def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's broadcast of ``shapes``; a ValueError saying they do not broadcast otherwise."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError("shapes " + ", ".join(str(list(s)) for s in shapes)
                         + " do not broadcast") from None


def elementwise_infer(impl: Callable[..., Any]) -> Callable[..., tuple]:
    """Shape rule of an element-wise op: broadcast shapes; dtype as the kernel gives it."""

    dtypes: dict[tuple, np.dtype] = {}  # (input dtypes, attrs) -> result dtype

    def infer(*values: Any, **attrs: Any) -> tuple[tuple[int, ...], np.dtype]:
        shape = broadcast_shape(*(v.shape for v in values))
        # an attribute's type is part of the key: pow(2) and pow(2.0) differ on integers
        key = (tuple(np.dtype(v.dtype) for v in values),
               tuple((k, type(a), a) for k, a in attrs.items()))
        cacheable = all(isinstance(a, Hashable) for a in attrs.values())
        dtype = dtypes.get(key) if cacheable else None
        if dtype is None:
            with np.errstate(all="ignore"):
                sample = impl(*(np.ones((), dtype=v.dtype) for v in values), **attrs)
            dtype = np.asarray(sample).dtype
            if cacheable:
                if len(dtypes) > 1024:  # attributes that change every step (a clip bound)
                    dtypes.clear()
                dtypes[key] = dtype
        return shape, dtype

    return infer


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...] | None:
    """Axes as a sorted tuple of non-negative ints (None stays None: every axis).

    A 0-d value takes axis 0 or -1, as in PyTorch; both name its only (implicit) element, so
    they normalize to ``()`` (numpy's "no axis": reducing a 0-d value over nothing or over
    everything is the same)."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    if ndim == 0:
        for a in axes:
            if int(a) not in (0, -1):
                raise ValueError(f"axis {int(a)} is out of range for 0 dimensions (a 0-d "
                                 f"value takes axis 0 or -1)")
        return ()
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axes}")
    return tuple(sorted(out))


def pick_alias(op: str, name: str, value: Any, alias: str, alias_value: Any,
               default: Any) -> Any:
    """``value`` or its PyTorch alias (``axis``/``dim``, ``keepdims``/``keepdim``); a
    ShapeError when both are given and differ; ``default`` when neither is given."""
    if alias_value is None:
        return default if value is None else value
    if value is not None and value != alias_value:
        raise ShapeError(with_location(f"{op}: got {name}={value!r} and {alias}="
                                       f"{alias_value!r}; pass one of them"))
    return alias_value


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None,
                  keepdims: bool) -> tuple[int, ...]:
    """Shape after reducing ``axes`` (None: all) of ``shape``."""
    axes = tuple(range(len(shape))) if axes is None else axes
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` back to ``shape`` over the axes broadcasting added: every binary VJP uses it."""
    return g if tuple(g.shape) == tuple(shape) else g.sum_to(shape)


def float_dtype(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.floating)


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
NO_ATTRS: dict = {}


class OpBase:
    """What every op family's methods rely on: the two hooks (``_apply`` runs or records one op,
    ``_coerce`` turns a Python number or array into a value of the same kind) and the shape."""

    __slots__ = ()
    shape: tuple[int, ...]
    dtype: np.dtype

    def _apply(self, op: Any, inputs: tuple, attrs: dict) -> Any:
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
