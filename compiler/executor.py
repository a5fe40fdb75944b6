"""Runs generated code: compiles the source once, owns the buffers (one set per thread), and
turns an exception inside generated code into one naming the IR value and the user's line.
The source stays in ``linecache`` (for tracebacks) while its ``Executable`` is alive."""

from __future__ import annotations

import itertools
import linecache
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import AprenderError, DTypeError, ShapeError, with_location

_counter = itertools.count()


class ExecutionError(AprenderError, RuntimeError):
    """An exception raised inside generated code, mapped back to the graph."""


class ExecutionShapeError(ExecutionError, ShapeError):
    """A ValueError or IndexError inside generated code (bad shapes, an index out of range):
    also a ``ShapeError``, as the eager op raises."""


class ExecutionDTypeError(ExecutionError, DTypeError):
    """A TypeError inside generated code: also a ``DTypeError``, as the eager op raises."""


def _error_class(error: Exception) -> type[ExecutionError]:
    if isinstance(error, ValueError | IndexError):
        return ExecutionShapeError
    return ExecutionDTypeError if isinstance(error, TypeError) else ExecutionError


class Executable:
    """A loaded program: call it with numpy arrays, get a tuple of arrays."""

    def __init__(self, source: str, fn_name: str, buffers: list, consts: list,
                 kernels: dict[str, Any], line_map: dict[int, tuple[str, str]],
                 label: str) -> None:
        self.source, self.fn_name = source, fn_name
        self.buffer_specs, self.consts, self.kernels = buffers, consts, kernels
        self.line_map = line_map
        self.filename = f"<aprender-generated {label} #{next(_counter)}>"
        linecache.cache[self.filename] = (len(source), None, source.splitlines(True),
                                          self.filename)
        weakref.finalize(self, linecache.cache.pop, self.filename, None)
        namespace: dict[str, Any] = {}
        exec(compile(source, self.filename, "exec"), namespace)  # our own generated source
        self._build: Callable = namespace["build"]
        self._local = threading.local()

    def _function(self) -> Callable:
        buffers = [np.empty(shape, dtype, order=order) for shape, dtype, order in self.buffer_specs]
        fn = self._build(np, buffers, self.consts, self.kernels)
        self._local.fn = fn
        return fn

    def __call__(self, *arrays: Any) -> tuple:
        fn = getattr(self._local, "fn", None) or self._function()
        try:
            return fn(*arrays)
        except Exception as e:
            raise self._explain(e) from e

    def _explain(self, error: Exception) -> Exception:
        for frame in reversed(traceback.extract_tb(error.__traceback__)):
            if frame.filename == self.filename and frame.lineno in self.line_map:
                value, src = self.line_map[frame.lineno]
                where = f" (recorded at {src})" if src else ""
                return _error_class(error)(f"generated code failed computing {value}{where}: "
                                           f"{type(error).__name__}: {error}")
        return _error_class(error)(with_location(f"generated code failed: "
                                                 f"{type(error).__name__}: {error}"))
