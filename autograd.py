"""The seed's eager autograd API: ``from aprender.autograd import Tensor, no_grad, ...``."""

from .runtime import (
    Tensor,
    clear_grad,
    clear_graph,
    concat,
    current_graph,
    detect_anomaly,
    enable_grad,
    get_grad,
    grad,
    is_grad_enabled,
    maximum,
    minimum,
    no_grad,
    stack,
    where,
)

__all__ = ["Tensor", "clear_grad", "clear_graph", "concat", "current_graph", "detect_anomaly",
           "enable_grad", "get_grad", "grad", "is_grad_enabled", "maximum", "minimum", "no_grad",
           "stack", "where"]
