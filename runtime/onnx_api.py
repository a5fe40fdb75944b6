"""``aprender.onnx``: export a function or a module to ONNX.

``export(model, example_args, path)`` traces one call (``ap.trace``) and writes the graph with
``ir.onnx_export.to_onnx``: tensor arguments become the model's inputs, the tensors and arrays
the call reached (parameters, buffers, closures) its initializers. The graph records the path
the example took through Python control flow, for the example's shapes, as ``ap.trace`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..ir.onnx_export import MIN_OPSET, OnnxExportError, to_onnx
from .tensor import Tensor
from .tracing import trace_with_captures

__all__ = ["OnnxExportError", "export"]


def export(fn_or_module: Callable, example_args: Any, path: str | Path | None = None, *,
           opset: int = MIN_OPSET) -> Any:
    """Trace ``fn_or_module(*example_args)`` and return it as an ``onnx.ModelProto``, written
    to ``path`` when given (open it in Netron to see the graph). ``example_args`` is a tuple of
    arguments or a single one; numpy arrays among them become tensor inputs. Needs the onnx
    package (``pip install 'aprender[onnx]'``); an op with no ONNX form (dropout in training
    mode, an all-reduce) raises ``OnnxExportError`` naming it."""
    args = example_args if isinstance(example_args, tuple | list) else (example_args,)
    args = tuple(Tensor(a) if isinstance(a, np.ndarray) else a for a in args)
    graph, captured = trace_with_captures(fn_or_module, *args)
    return to_onnx(graph, path, opset=opset, initializers=captured)
