"""Every op's definition, grouped by family. Importing this package registers them all."""

from . import collective, conv, elementwise, linalg, nn, random, reductions, shape, sources

__all__ = ["collective", "conv", "elementwise", "linalg", "nn", "random", "reductions", "shape",
           "sources"]
