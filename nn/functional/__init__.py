"""``aprender.nn.functional`` (import as ``F``): ops and losses under PyTorch's names.

Each family lives in its own module; this package re-exports their ``__all__``.
"""

from .activations import *  # noqa: F403
from .attention import *  # noqa: F403
from .conv import *  # noqa: F403
from .losses import *  # noqa: F403
from .normalization import *  # noqa: F403
from .random import *  # noqa: F403
from .sparse import *  # noqa: F403
