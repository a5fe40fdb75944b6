"""Exceptions raised by aprender, and the helper that finds the user's source line."""

from __future__ import annotations

import functools
import linecache
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_INTERNAL_DIRS = {"ir", "runtime", "compiler", "nn", "optim", "distributed"}


@functools.lru_cache(maxsize=4096)  # one answer per source file: asked for every traced op
def _is_internal(filename: str) -> bool:
    path = os.path.abspath(filename)
    if not path.startswith(_PACKAGE_DIR + os.sep):
        return False
    parts = os.path.relpath(path, _PACKAGE_DIR).split(os.sep)
    return len(parts) == 1 or parts[0] in _INTERNAL_DIRS


class AprenderError(Exception):
    """Base class of every error aprender raises on bad input."""


class ShapeError(AprenderError, ValueError):
    """Shapes that an op cannot combine, or a bad shape argument."""


class DTypeError(AprenderError, TypeError):
    """A dtype an op cannot take (e.g. a gradient requested on an integer tensor)."""


class GraphError(AprenderError, RuntimeError):
    """A misuse of the recorded graph: backward on a cleared graph, a stale in-place value, ..."""


class CompileError(AprenderError, RuntimeError):
    """``compile`` cannot give the eager result for this call, and says why."""


class TransformError(AprenderError, ValueError):
    """A function transform (``aprender.func``: grad, vmap, jvp, ...) cannot take this call:
    an op without a batching rule, mismatched ``in_axes``, a non-scalar ``grad`` output, ..."""


class StateDictError(AprenderError, KeyError):
    """A state dict with missing, unexpected or mis-shaped entries."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AnomalyError(AprenderError, FloatingPointError):
    """Raised under ``detect_anomaly()`` at the first op that produces nan or inf."""


def user_location(skip: tuple[str, ...] = ()) -> str | None:
    """``file:line: source`` of the innermost caller outside the aprender package, if any;
    frames of files whose names start with one of ``skip`` (another library's directory, e.g.
    numpy's when numpy calls back into a tensor) are passed over too."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(("<aprender", *skip)) and not _is_internal(filename):
            line = linecache.getline(filename, frame.f_lineno).strip()
            where = f"{filename}:{frame.f_lineno}"
            return f"{where}: {line}" if line else where
        frame = frame.f_back
    return None


def describe(value: object) -> str:
    """Short ``dtype[shape]`` description of an array-like operand for error messages."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None:
        return f"{type(value).__name__} {value!r}"
    return f"{dtype}{list(shape)}"


def with_location(message: str, skip: tuple[str, ...] = ()) -> str:
    """Append the user's source line to ``message`` when it can be found (``skip``: as in
    ``user_location``)."""
    where = user_location(skip)
    return f"{message} (at {where})" if where else message
