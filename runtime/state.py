"""Per-thread state: grad mode, anomaly mode and the tape (the recorded graph)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from ..ir.graph import Node

T = TypeVar("T")


class Tape:
    """What one thread has recorded since its last ``clear_graph()``.

    Holds nodes weakly: a graph no live tensor reaches is freed by reference counting alone.
    ``runtime.tensor.apply`` appends to ``refs`` and calls ``compact()`` past ``limit``.
    """

    __slots__ = ("refs", "cleared", "limit")

    def __init__(self) -> None:
        self.refs: list[weakref.ref] = []
        self.cleared = False
        self.limit = 1024

    def compact(self) -> None:
        """Forget the nodes that have been freed; grow the limit with what is still live."""
        self.refs = [r for r in self.refs if r() is not None]
        self.limit = max(1024, 2 * len(self.refs))

    def nodes(self) -> list[Node]:
        """The live recorded nodes, oldest first."""
        return [n for r in self.refs if (n := r()) is not None]

    def clear(self) -> None:
        """Mark the tape cleared and drop what its nodes hold (values stay with tensors)."""
        self.cleared = True
        for node in self.nodes():
            node.inputs = ()
            node.value = None
            node.saved = ()
        self.refs = []


class _State(threading.local):
    def __init__(self) -> None:
        self.grad_enabled = True
        self.anomaly = False
        #: while tracing: the ``runtime.recorder.Recorder`` every op and side effect reports to
        self.recorder: Any = None
        self.tape = Tape()


STATE = _State()


def is_grad_enabled() -> bool:
    """Whether ops are recorded for backward in this thread."""
    return STATE.grad_enabled


class GradMode:
    """Context manager that sets this thread's grad mode and restores it on exit."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._saved: list[bool] = []

    def __enter__(self) -> GradMode:
        self._saved.append(STATE.grad_enabled)
        STATE.grad_enabled = self.enabled
        return self

    def __exit__(self, *exc: Any) -> None:
        STATE.grad_enabled = self._saved.pop()


def no_grad(fn: Callable[[], T] | None = None) -> Any:
    """``no_grad(fn)`` runs ``fn()`` with nothing recorded and returns its result;
    ``with no_grad():`` does the same for a block."""
    if fn is None:
        return GradMode(False)
    with GradMode(False):
        return fn()


def enable_grad() -> GradMode:
    """``with enable_grad():`` records ops again inside a ``no_grad`` block."""
    return GradMode(True)


class detect_anomaly:  # noqa: N801 - used like a function, as in PyTorch
    """``with detect_anomaly():`` raises ``AnomalyError`` at the first op (forward or backward)
    that produces nan or inf, naming the op and the user's line."""

    def __enter__(self) -> detect_anomaly:
        self._saved = STATE.anomaly
        STATE.anomaly = True
        return self

    def __exit__(self, *exc: Any) -> None:
        STATE.anomaly = self._saved


def clear_graph() -> None:
    """Drop this thread's recorded graph; tensor values and ``.grad()`` stay."""
    STATE.tape.clear()
    STATE.tape = Tape()
