"""``functional_call``: run a module with given tensors in place of its parameters and buffers
(``torch.func.functional_call``), so transforms can differentiate with respect to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import TransformError, with_location
from ..runtime.tensor import Tensor
from .module import Module


def _slots(value: Any, seen: set[int]) -> Iterator[tuple[Any, Any, Tensor]]:
    """``(container, key, tensor)`` for every place in a module tree that holds a tensor
    (attributes, list items, dict values), so a tensor held twice (tied weights) is found at
    both places."""
    if isinstance(value, Module):
        if id(value) in seen:
            return
        seen.add(id(value))
        for name, child in value._children():
            if isinstance(child, Tensor):
                yield value, name, child
            else:
                yield from _slots(child, seen)
    elif isinstance(value, list | dict):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            if isinstance(child, Tensor):
                yield value, key, child
            else:
                yield from _slots(child, seen)
    elif isinstance(value, tuple):
        for child in value:
            if isinstance(child, Tensor):
                raise TransformError(with_location(
                    "functional_call: a module holds tensors in a tuple, which cannot be "
                    "replaced; store them in a list"))
            yield from _slots(child, seen)


def _put(container: Any, key: Any, value: Tensor) -> None:
    if isinstance(container, Module):
        object.__setattr__(container, key, value)
    else:
        container[key] = value


def functional_call(module: Module, parameters_and_buffers: dict[str, Any], args: Any = (),
                    kwargs: dict[str, Any] | None = None, *, strict: bool = False) -> Any:
    """``module(*args, **kwargs)`` with each named parameter or buffer (dotted names as in
    ``named_parameters()``/``state_dict()``) replaced by the given tensor for this call only; a
    tensor held under several names (tied weights) is replaced everywhere. Names not given keep
    the module's own tensors (with ``strict``, every parameter and buffer must be given)."""
    known = dict(module.named_parameters()) | dict(module.named_buffers())
    unknown = sorted(set(parameters_and_buffers) - set(known))
    if unknown:
        raise TransformError(with_location(
            f"functional_call: {type(module).__name__} has no parameter or buffer "
            f"{', '.join(unknown)}"))
    missing = sorted(set(known) - set(parameters_and_buffers))
    if strict and missing:
        raise TransformError(with_location(
            f"functional_call: strict=True and no tensor given for {', '.join(missing)}"))
    swap: dict[int, Tensor] = {}
    for name, value in parameters_and_buffers.items():
        t = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
        if tuple(t.shape) != tuple(known[name].shape):
            raise TransformError(with_location(
                f"functional_call: {name} has shape {list(known[name].shape)}, got "
                f"{list(t.shape)}"))
        swap[id(known[name])] = t
    replaced = [(c, k, old) for c, k, old in _slots(module, set()) if id(old) in swap]
    for container, key, old in replaced:
        _put(container, key, swap[id(old)])
    try:
        args = args if isinstance(args, tuple) else (args,)
        return module(*args, **(kwargs or {}))
    finally:
        for container, key, old in reversed(replaced):
            _put(container, key, old)
