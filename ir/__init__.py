"""The IR: graph types, the op registry with every op's definition, and the shared op API."""

from . import ops  # noqa: F401  (registers every op)
from .graph import Graph, Node, Value, type_str
from .methods import OpMethods
from .registry import OpDef, all_ops, get_op, register

__all__ = ["Graph", "Node", "OpDef", "OpMethods", "Value", "all_ops", "get_op", "register",
           "type_str"]
