"""Graph -> Graph passes, each small and separately tested."""

from .cse import cse
from .dce import dce
from .decompose import decompose
from .fold import fold_constants
from .fuse import fuse
from .planning import product_totals, relu_masks
from .reductions import lower_reductions
from .schedule import schedule_collectives
from .simplify import simplify

__all__ = ["cse", "dce", "decompose", "fold_constants", "fuse", "lower_reductions",
           "product_totals", "relu_masks", "schedule_collectives", "simplify"]
