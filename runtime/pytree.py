"""Call arguments as a pytree: the structure of a call (part of the cache key) and its leaves.

Containers: ``list``, ``tuple``, ``dict`` (and subclasses such as ``OrderedDict``), named
tuples and dataclass instances; their types, lengths, keys and field names are in the key.
Leaves: tensors and numpy arrays (keyed by shape, dtype and, for tensors, ``requires_grad``),
Python and numpy scalars and strings (keyed by value, the sign of zero included), ``None``, and
stateful objects passed by reference (modules, optimizers, functions: keyed by identity, their
contents guarded by the walk). Any other type is refused with an error naming it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import CompileError
from .tensor import Tensor

_FUNCTIONS = (types.FunctionType, types.MethodType, types.BuiltinFunctionType)
#: Python values a compiled function may return as they are
SCALAR_TYPES = (bool, int, float, str, np.generic)


def by_reference(value: Any) -> bool:
    """Whether an argument leaf is a stateful object passed by reference (a module, an
    optimizer, a function): keyed by identity, its contents walked and guarded."""
    from ..nn.module import Module
    from ..optim.optimizer import Optimizer

    return isinstance(value, (Module, Optimizer, *_FUNCTIONS))


def _scalar_key(value: Any) -> Any:
    """Value keys that keep ``0.0`` and ``-0.0`` (and nan) apart."""
    if value == 0 or value != value:
        return (type(value), repr(value))
    return (type(value), value)


def leaf_key(value: Any) -> Any:
    """The cache-key part of one leaf (cheap: it runs on every call)."""
    kind = type(value)
    if kind is Tensor:
        data = value._data
        return (Tensor, data.shape, data.dtype, value._rg)
    if kind is np.ndarray:
        return (np.ndarray, value.shape, value.dtype)
    if kind is float or kind is int or kind is bool:
        return _scalar_key(value)
    if value is None:
        return None
    if kind is str:
        return (str, value)
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return (value.dtype, _scalar_key(value.item()))
    if isinstance(value, Tensor):
        return (Tensor, value.shape, value.dtype, value._rg)
    if isinstance(value, np.ndarray):
        return (np.ndarray, value.shape, value.dtype)
    if by_reference(value):
        return ("object", id(value))
    raise CompileError(f"compile: arguments of type {kind.__module__}.{kind.__qualname__} are "
                       f"not supported (tensors, numpy arrays, Python/numpy scalars, strings, "
                       f"None, modules, optimizers, functions, and lists/tuples/dicts/named "
                       f"tuples/dataclasses of them are); pass its tensors or values instead, "
                       f"or reach the object through a closure")


def _node(value: Any) -> tuple[Any, list] | None:
    """``(structure, children)`` of a container, or None for a leaf."""
    kind = type(value)
    if kind is np.ndarray or kind is Tensor:  # the common leaves, without the checks below
        return None
    if kind is tuple or kind is list:
        return (kind, len(value)), list(value)
    if isinstance(value, dict):
        return (kind, tuple(value)), list(value.values())
    if isinstance(value, tuple) and hasattr(kind, "_fields"):
        return (kind, kind._fields), list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = tuple(f.name for f in dataclasses.fields(value))
        return (kind, names), [getattr(value, n) for n in names]
    return None


def flatten(value: Any, leaves: list, keys: list | None = None) -> Any:
    """Append ``value``'s leaves (and, given ``keys``, their cache keys); return its structure
    (None for a leaf)."""
    node = _node(value)
    if node is None:
        if keys is not None:
            keys.append(leaf_key(value))
        leaves.append(value)
        return None
    structure, children = node
    return (structure, tuple(flatten(c, leaves, keys) for c in children))


def children_like(reference: Any, value: Any) -> list[tuple[Any, Any]] | None:
    """``(reference child, value child)`` pairs when ``value`` is a container of the same kind
    and size as ``reference`` (dicts with the same keys pair by key, in ``reference``'s order);
    ``[]`` when both are leaves; None when they do not match."""
    ref_node, node = _node(reference), _node(value)
    if ref_node is None or node is None:
        return [] if ref_node is None and node is None else None
    if isinstance(reference, dict) and isinstance(value, dict):
        if set(reference) != set(value):
            return None
        return [(reference[k], value[k]) for k in reference]
    if ref_node[0] != node[0]:
        return None
    return list(zip(ref_node[1], node[1], strict=True))


def flatten_like(reference: Any, value: Any) -> list | None:
    """``value``'s leaves in the order of ``reference``'s (see ``children_like``); None when
    the structures differ."""
    pairs = children_like(reference, value)
    if pairs is None:
        return None
    if not pairs and _node(reference) is None:
        return [value]
    out: list = []
    for r, v in pairs:
        sub = flatten_like(r, v)
        if sub is None:
            return None
        out.extend(sub)
    return out


def key_of(args: tuple, kwargs: dict) -> tuple[tuple, list]:
    """The structural key of a call and its leaves (a fast path for flat positional calls)."""
    if not kwargs:
        keys = [leaf_key(a) if _node(a) is None else _NOT_FLAT for a in args]
        if _NOT_FLAT not in keys:
            return (len(args), tuple(keys)), list(args)
    leaves: list = []
    keys = []
    structure = flatten((args, kwargs), leaves, keys)
    return (structure, tuple(keys)), leaves


_NOT_FLAT = object()


def rebuild(value: Any, replace: Callable[[Any], Any]) -> Any:
    """``value`` with every leaf passed through ``replace`` (containers rebuilt)."""
    node = _node(value)
    if node is None:
        return replace(value)
    (kind, _), children = node
    items = [rebuild(c, replace) for c in children]
    if kind is tuple or kind is list:
        return kind(items)
    if isinstance(value, dict):
        out = copy.copy(value)
        out.update(zip(value, items, strict=True))
        return out
    if isinstance(value, tuple):
        return kind(*items)
    out = copy.copy(value)
    for f, item in zip(dataclasses.fields(value), items, strict=True):
        object.__setattr__(out, f.name, item)
    return out


def rebuild_from(structure: Any, leaves: Any) -> Any:
    """The value ``flatten`` described by ``structure``, with leaves taken from an iterator."""
    if structure is None:
        return next(leaves)
    (kind, meta), children = structure
    items = [rebuild_from(c, leaves) for c in children]
    if kind is tuple or kind is list:
        return kind(items)
    if issubclass(kind, dict):
        return kind(zip(meta, items, strict=True))
    if issubclass(kind, tuple):
        return kind(*items)
    return kind(**dict(zip(meta, items, strict=True)))


def leaf_names(args: tuple, kwargs: dict, names: list[str] | None = None) -> list[str]:
    """A readable name per leaf (``x``, ``batch[0]``, ``cfg['lr']``), in flatten order;
    ``names`` are the positional parameters' names where known."""
    out: list[str] = []

    def walk(value: Any, name: str) -> None:
        node = _node(value)
        if node is None:
            out.append(name)
            return
        (kind, keys), children = node
        labels = keys if isinstance(keys, tuple) and isinstance(value, dict) else \
            (keys if isinstance(keys, tuple) else range(len(children)))
        for label, child in zip(labels, children, strict=True):
            part = f".{label}" if isinstance(label, str) and not isinstance(value, dict) \
                else f"[{label!r}]"
            walk(child, name + part)

    for i, a in enumerate(args):
        walk(a, names[i] if names and i < len(names) else f"args[{i}]")
    for k, v in kwargs.items():
        walk(v, k)
    return out


def describe_key(key: Any) -> str:
    """A leaf key as text: ``tensor float32[4, 8] requires_grad=True``, ``float 0.5``."""
    if key is None:
        return "None"
    if key[0] is Tensor:
        return f"tensor {key[2]}{list(key[1])} requires_grad={key[3]}"
    if key[0] is np.ndarray:
        return f"array {key[2]}{list(key[1])}"
    if key[0] == "object":
        return f"object #{key[1]}"
    if key[0] is str:
        return f"str {key[1]!r}"
    value = key[1][1] if isinstance(key[1], tuple) else key[1]
    name = key[0].__name__ if isinstance(key[0], type) else str(key[0])
    return f"{name} {value if not isinstance(value, float) or math.isfinite(value) else value}"
