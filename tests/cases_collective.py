"""Op cases of the collective ops in one process, where an all-reduce is the identity (the
values across ranks: tests/test_distributed_comm.py, under mpiexec)."""

from __future__ import annotations

from opcases import Case

CASES = [
    Case("all_reduce_sum", lambda x: x.all_reduce("sum"), lambda x: x, ((3, 4),)),
    Case("all_reduce_mean_0d", lambda x: x.all_reduce("mean"), lambda x: x, ((),)),
]
