"""``Module``: parameters found through attributes, state dicts, train/eval; containers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import ShapeError, StateDictError
from ..runtime import Tensor, no_grad
from ..runtime.tensor import set_grad


class Module:
    """Base class of layers and models, as in PyTorch.

    Parameters are the leaf tensors that require grad, found in attributes and (recursively) in
    sub-modules and lists, tuples and dicts of them; names are dotted paths (``fc1.weight``,
    ``layers.0.bias``). Buffers are tensors registered with ``register_buffer`` (BatchNorm's
    running statistics): they are saved in the state dict and loaded in place, but they are not
    parameters. ``__call__`` runs ``forward``.
    """

    training: bool = True

    #: parameters stored transposed with respect to PyTorch's layout (see load_torch_state_dict)
    torch_transposed: tuple[str, ...] = ()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # --- buffers -------------------------------------------------------------------------------
    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Make attribute ``name`` a buffer holding ``tensor`` (or None: no buffer yet), as in
        PyTorch: a tensor of the module's state that is not a parameter (running statistics,
        counters). Persistent buffers are saved by ``state_dict`` and restored in place by
        ``load_state_dict``; ``parameters()`` never lists a buffer."""
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise KeyError(f"register_buffer: {name!r} is not a public attribute name")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name} must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self.__dict__.setdefault("_buffers", {})[name] = bool(persistent)
        setattr(self, name, tensor)

    def _buffer_names(self) -> dict[str, bool]:
        """Names of this module's own buffers -> whether each is persistent."""
        return self.__dict__.get("_buffers", {})

    # --- discovery -----------------------------------------------------------------------------
    def _children(self) -> Iterator[tuple[str, Any]]:
        for name, value in vars(self).items():
            if not name.startswith("_"):
                yield name, value

    def _walk(self, prefix: str, value: Any, seen: set[int],
              kind: str = "parameter") -> Iterator[tuple[str, Any]]:
        """``(dotted name, tensor)`` for the parameters (``kind="parameter"``), the buffers
        (``"buffer"``, ``"persistent"``: those the state dict holds) or both (``"state"``: the
        parameters and persistent buffers, in attribute order), each tensor once."""
        if isinstance(value, Tensor):
            if kind in ("parameter", "state") and value.is_leaf() and \
                    value.requires_grad_enabled() and id(value) not in seen:
                seen.add(id(value))
                yield prefix, value
        elif isinstance(value, Module):
            if id(value) in seen:
                return
            seen.add(id(value))
            buffers = value._buffer_names()
            for name, child in value._children():
                path = f"{prefix}.{name}" if prefix else name
                if name not in buffers:
                    yield from self._walk(path, child, seen, kind)
                elif isinstance(child, Tensor) and id(child) not in seen and (
                        kind == "buffer" or (kind in ("persistent", "state") and buffers[name])):
                    seen.add(id(child))
                    yield path, child
        elif isinstance(value, list | tuple):
            for i, child in enumerate(value):
                yield from self._walk(f"{prefix}.{i}" if prefix else str(i), child, seen, kind)
        elif isinstance(value, dict):
            for key, child in value.items():
                yield from self._walk(f"{prefix}.{key}" if prefix else str(key), child, seen,
                                      kind)

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, tensor)`` for every parameter, each tensor once."""
        yield from self._walk("", self, set())

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, tensor)`` for every buffer (None buffers are skipped)."""
        yield from self._walk("", self, set(), "buffer")

    def buffers(self) -> list[Tensor]:
        """Every buffer, in attribute order, each tensor once."""
        return [b for _, b in self.named_buffers()]

    def parameters(self) -> list[Tensor]:
        """Every parameter, in attribute order, each tensor once."""
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        """This module and every sub-module, depth first."""
        stack: list[Any] = [self]
        seen: set[int] = set()
        while stack:
            value = stack.pop()
            if isinstance(value, Module):
                if id(value) in seen:
                    continue
                seen.add(id(value))
                yield value
                stack.extend(reversed([v for _, v in value._children()]))
            elif isinstance(value, list | tuple):
                stack.extend(reversed(value))
            elif isinstance(value, dict):
                stack.extend(reversed(list(value.values())))

    # --- modes and gradients -------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every sub-module (Dropout uses it)."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to None."""
        for p in self.parameters():
            set_grad(p, None)

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter and persistent buffer name -> a copy of its values (savable with
        ``numpy.savez``), in attribute order."""
        return {name: np.array(t.data()) for name, t in self._walk("", self, set(), "state")}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy values into the parameters and persistent buffers in place; checks every key
        and shape first, so a bad state dict changes nothing."""
        params = dict(self._walk("", self, set(), "state"))
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if strict and (missing or unexpected):
            raise StateDictError(f"load_state_dict: missing keys {missing}, unexpected keys "
                                 f"{unexpected}")
        arrays = {}
        for name, p in params.items():
            if name not in state:
                continue
            value = state[name]
            value = value.data() if isinstance(value, Tensor) else np.asarray(value)
            if value.shape != p.shape:
                raise ShapeError(f"load_state_dict: {name} has shape {list(value.shape)} in the "
                                 f"state dict but {list(p.shape)} in the model")
            arrays[name] = value.astype(p.dtype, copy=False)  # PyTorch's copy_ casts
        with no_grad():
            for name, value in arrays.items():
                params[name].assign(value)

    def load_torch_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """``load_state_dict`` of a PyTorch model's state dict (arrays, or tensors with
        ``.numpy()``): the parameters a module lists in ``torch_transposed`` (``Linear.weight``,
        ``[in, out]`` here, ``[out, in]`` in PyTorch) are transposed first; every other layer
        already has PyTorch's layout and keys."""
        transposed = {id(getattr(m, name)) for m in self.modules() for name in m.torch_transposed}
        params = dict(self._walk("", self, set(), "state"))
        converted = {}
        for key, value in state.items():
            value = np.asarray(value.numpy() if hasattr(value, "numpy") and
                               not isinstance(value, Tensor) else value)
            param = params.get(key)
            converted[key] = value.T if param is not None and id(param) in transposed else value
        self.load_state_dict(converted, strict)

    def save(self, path: str) -> None:
        """Write the state dict to ``path`` with ``numpy.savez``."""
        np.savez(path, **self.state_dict())

    def load(self, path: str, strict: bool = True) -> None:
        """Load a state dict written by ``save`` (no pickles are read)."""
        with np.load(path, allow_pickle=False) as data:
            self.load_state_dict({k: data[k] for k in data.files}, strict)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._children():
            items = child if isinstance(child, list | tuple) else [child]
            for i, item in enumerate(items):
                if isinstance(item, Module):
                    label = name if item is child else f"{name}.{i}"
                    body = repr(item).replace("\n", "\n  ")
                    lines.append(f"  ({label}): {body}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"

    def extra_repr(self) -> str:
        return ""


class _Container(Module):
    """Modules held in order; they are named ``0``, ``1``, ... as in PyTorch."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        self._items = list(modules)

    def _children(self) -> Iterator[tuple[str, Any]]:
        for i, module in enumerate(self._items):
            yield str(i), module

    def __getitem__(self, i: int) -> Module:
        return self._items[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Sequential(_Container):
    """Modules applied one after another."""

    def __init__(self, *layers: Module) -> None:
        super().__init__(layers)

    def forward(self, x: Any) -> Any:
        for layer in self._items:
            x = layer(x)
        return x


class ModuleList(_Container):
    """A list of modules whose parameters are discovered (``blocks.0.weight``, ...)."""

    def append(self, module: Module) -> ModuleList:
        self._items.append(module)
        return self
