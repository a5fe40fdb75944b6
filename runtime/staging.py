"""What a compile trace changes, so it can be undone: tracing never changes user objects.

While ``STATE.staging`` is set, in-place updates and ``backward()`` still run eagerly (so the
trace sees real values) but are also recorded as events; afterwards ``restore()`` puts every
touched array, version counter and gradient back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GraphError, with_location


class Staging:
    """Events of one compile trace and the state to restore after it."""

    def __init__(self, events: list) -> None:
        self.events = events
        self._data: dict[int, tuple[Any, np.ndarray, int]] = {}
        self._grads: dict[int, tuple[Any, Any]] = {}

    def before_mutation(self, t: Any) -> None:
        if id(t) not in self._data:
            self._data[id(t)] = (t, t._data.copy(), t._vc[0])

    def before_grad_change(self, t: Any) -> None:
        if id(t) not in self._grads:
            self._grads[id(t)] = (t, t._grad)

    def grad_leaves(self) -> list[Any]:
        """Every tensor whose gradient was recorded (snapshotted or changed)."""
        return [t for t, _ in self._grads.values()]

    def original_grad(self, t: Any) -> Any:
        return self._grads[id(t)][1]

    def restore(self) -> None:
        for t, data, version in self._data.values():
            np.copyto(t._data, data)
            t._vc[0] = version
        for t, grad in self._grads.values():
            t._grad = grad


def forbid_read(what: str) -> GraphError:
    """The error for reading a tensor's value inside a compiled function."""
    return GraphError(with_location(
        f"{what}: reading a tensor's value inside a compiled function is not possible (the "
        f"value is not known when the code is generated); move the read outside the compiled "
        f"function, e.g. return the tensor and call .item() on the result"))
