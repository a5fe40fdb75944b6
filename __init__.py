"""aprender: a small, readable define-then-run autograd framework on numpy.

Eager tensors record every op into an IR graph (the tape); ``backward()`` walks it in reverse.
"""

from . import autograd, data, func, ir, nn, optim
from .errors import (
    AnomalyError,
    AprenderError,
    DTypeError,
    GraphError,
    ShapeError,
    StateDictError,
    TransformError,
)
from .jit import compile  # noqa: A004
from .runtime import (
    Generator,
    Tensor,
    arange,
    cat,
    clear_grad,
    clear_graph,
    concat,
    detect_anomaly,
    einsum,
    enable_grad,
    eye,
    full,
    get_grad,
    grad,
    is_grad_enabled,
    linspace,
    manual_seed,
    maximum,
    minimum,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    stack,
    trace,
    uniform,
    where,
    zeros,
    zeros_like,
)
from .runtime import onnx_api as onnx  # noqa: F401  (ap.onnx.export)

__version__ = "0.1.0"

__all__ = ["AnomalyError", "AprenderError", "DTypeError", "Generator", "GraphError", "ShapeError",
           "StateDictError", "Tensor", "TransformError", "arange", "autograd", "cat",
           "clear_grad", "clear_graph", "compile", "concat", "data", "detect_anomaly", "einsum",
           "enable_grad", "eye", "full", "func", "get_grad", "grad", "ir", "is_grad_enabled",
           "linspace", "manual_seed", "maximum", "minimum", "nn", "no_grad", "ones", "ones_like",
           "optim", "rand", "randn", "stack", "trace", "uniform", "where", "zeros", "zeros_like"]
