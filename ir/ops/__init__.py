"""Every op's definition, grouped by family. Importing this package registers them all."""

from . import conv, elementwise, linalg, nn, random, reductions, shape, sources

__all__ = ["conv", "elementwise", "linalg", "nn", "random", "reductions", "shape", "sources"]
