"""Every op's definition, grouped by family. Importing this package registers them all."""

from . import elementwise, linalg, reductions, shape, sources

__all__ = ["elementwise", "linalg", "reductions", "shape", "sources"]
