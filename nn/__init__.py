"""Layers, containers and losses: ``aprender.nn`` (``aprender.nn.functional`` holds the ops).

Each family lives in its own module; this package re-exports their ``__all__``.
"""

from . import functional as functional
from .attention import *  # noqa: F403
from .conv import *  # noqa: F403
from .dropout import *  # noqa: F403
from .layers import *  # noqa: F403
from .losses import *  # noqa: F403
from .module import Module as Module
from .module import ModuleList as ModuleList
from .module import Sequential as Sequential
from .normalization import *  # noqa: F403
from .sparse import *  # noqa: F403
