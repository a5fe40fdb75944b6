"""Graph transforms and source rendering: autodiff, passes, fusion, buffers, codegen."""

from .autodiff import joint, split
from .pipeline import DEFAULT_PASSES, CompiledGraph, Stage, lower

__all__ = ["DEFAULT_PASSES", "CompiledGraph", "Stage", "joint", "lower", "split"]
