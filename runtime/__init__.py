"""What runs: the eager tensor and its backward engine (and, later, generated code)."""

from .engine import backward, grad
from .factories import (
    arange,
    eye,
    full,
    linspace,
    ones,
    ones_like,
    randn,
    uniform,
    zeros,
    zeros_like,
)
from .functional import cat, concat, einsum, maximum, minimum, stack, where
from .random import Generator, default_generator, manual_seed, rand
from .state import clear_graph, detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, clear_grad, get_grad
from .tracing import current_graph, trace

__all__ = ["Generator", "Tensor", "arange", "backward", "cat", "clear_grad", "clear_graph",
           "concat", "current_graph", "default_generator", "detect_anomaly", "einsum",
           "enable_grad", "eye", "full", "get_grad", "grad", "is_grad_enabled", "linspace",
           "manual_seed", "maximum", "minimum", "no_grad", "ones", "ones_like", "rand", "randn",
           "stack", "trace", "uniform", "where", "zeros", "zeros_like"]
