"""``aprender.distributed``: data-parallel training over MPI (``mpi4py``; the ``mpi`` extra).

Importing aprender never imports mpi4py; ``init()`` does. Without ``mpiexec`` everything works
as a single process (rank 0 of 1).
"""

from .comm import *  # noqa: F403
from .ddp import *  # noqa: F403
from .sampler import *  # noqa: F403
