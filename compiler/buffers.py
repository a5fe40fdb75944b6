"""Buffer planning: which values get a preallocated buffer, and which buffers they share.

Values are visited in execution order. A value gets a planned buffer when its op writes with
``out=`` (its template says so), it is not a view, and neither it nor a view of it is returned
(returned arrays must not be overwritten by the next call). A buffer is reused once the last
reader of its current value has run; element-wise ops may write into a buffer an operand
frees at that very statement (in place), other ops only into buffers freed before.

A graph's in-place updates (``graph.updates``: input position, output position: the output
replaces that input's values, e.g. a parameter update) are computed straight into the input's
array when nothing reads the old values later.

Layout: ``A @ B.T`` with both operands C-contiguous is OpenBLAS's slow case (PERF-NOTES rule
3). When a 2-D product's right operand is a transposed C-contiguous value and its left operand
gets a planned buffer, that buffer is Fortran-ordered, so BLAS sees ``A.T @ B.T`` instead.
Only for small operands (up to ``FORTRAN_MAX_ELEMENTS``): element-wise ops mixing C and
Fortran layouts stride through memory, which costs more than the slow product saves once the
arrays outgrow the caches (measured: 1024x128 float32, a mixed-layout multiply took 0.8 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.ops.sources import CONSTANT

FORTRAN_MAX_ELEMENTS = 16384


@dataclass
class BufferPlan:
    """``buffer_of[id(value)] -> buffer index`` (or ``("input", j)``: written into input j);
    ``buffers[i] = (shape, dtype, order)``."""

    schedule: list[Node]
    buffer_of: dict[int, int | tuple[str, int]] = field(default_factory=dict)
    buffers: list[tuple[tuple[int, ...], np.dtype, str]] = field(default_factory=list)
    group_of: dict[int, int] = field(default_factory=dict)

    @property
    def allocations(self) -> int:
        """Buffers a call of the generated code writes into without allocating."""
        return len(self.buffers)


def flatten(graph: Graph) -> tuple[list[Node], dict[int, int]]:
    """Nodes in execution order with fused bodies expanded, and ``id(node) -> group index``."""
    schedule: list[Node] = []
    group_of: dict[int, int] = {}
    for k, node in enumerate(graph.nodes):
        if node.op.name == "fused":
            for inner in node.body:
                group_of[id(inner)] = k
                schedule.append(inner)
        else:
            schedule.append(node)
    return schedule, group_of


def writes_out(node: Node) -> bool:
    """Whether the op's template writes into an ``out=`` buffer."""
    template = node.op.template
    return bool(template) and "{{ out }}" in template and not node.op.aliases_input


def plan_buffers(graph: Graph) -> BufferPlan:
    """Assign buffers (see the module docstring)."""
    schedule, group_of = flatten(graph)
    plan = BufferPlan(schedule, group_of=group_of)
    root: dict[int, int] = {}
    for node in schedule:
        out = node.out
        root[id(out)] = root.get(id(node.inputs[0]), id(node.inputs[0])) \
            if node.op.aliases_input else id(out)
    escaping = {root.get(id(v), id(v)) for v in graph.outputs}
    fortran = _fortran_values(schedule, root)
    last_use: dict[int, int] = {}
    for i, node in enumerate(schedule):
        for v in node.inputs:
            last_use[root.get(id(v), id(v))] = i
    into_input = _write_backs(graph, schedule, root, last_use)
    free: dict[tuple, list[int]] = {}
    holder: dict[int, int] = {}  # root value id -> buffer index it occupies

    def release(i: int, node: Node) -> None:
        for v in node.inputs:
            r = root.get(id(v), id(v))
            if last_use.get(r) == i and r in holder:
                b = holder.pop(r)
                free.setdefault(plan.buffers[b], []).append(b)

    for i, node in enumerate(schedule):
        elementwise = node.op.kind == "elementwise"
        if elementwise:
            release(i, node)
        out = node.out
        if id(out) in into_input:
            plan.buffer_of[id(out)] = ("input", into_input[id(out)])
        elif node.op is not CONSTANT and writes_out(node) and id(out) not in escaping:
            key = (out.shape, out.dtype, "F" if id(out) in fortran else "C")
            if free.get(key):
                b = free[key].pop()
            else:
                b = len(plan.buffers)
                plan.buffers.append(key)
            plan.buffer_of[id(out)] = b
            if last_use.get(id(out), -1) > i:
                holder[id(out)] = b
            else:  # never read: free again at once
                free.setdefault(key, []).append(b)
        if not elementwise:
            release(i, node)
    return plan


def _write_backs(graph: Graph, schedule: list[Node], root: dict[int, int],
                 last_use: dict[int, int]) -> dict[int, int]:
    """``id(value) -> input index`` for write-back outputs that can be computed in place."""
    position = {id(n.out): i for i, n in enumerate(schedule)}
    result = {}
    for j, k in graph.updates:
        value, target = graph.outputs[k], graph.inputs[j]
        i = position.get(id(value))
        if i is None or root.get(id(value), id(value)) != id(value):
            continue
        node = schedule[i]
        if node.op.kind == "elementwise" and writes_out(node) and \
                last_use.get(id(target), -1) <= i and value.shape == target.shape and \
                value.dtype == target.dtype:
            result[id(value)] = j
    return result


def _fortran_values(schedule: list[Node], root: dict[int, int]) -> set[int]:
    """Left operands of 2-D products ``A @ X.T`` where ``X`` is stored C-contiguous."""
    producers = {id(n.out): n for n in schedule}
    fortran: set[int] = set()
    for node in schedule:
        if node.op.name != "matmul" or [len(v.shape) for v in node.inputs] != [2, 2]:
            continue
        left, right = node.inputs
        rnode = producers.get(id(right))
        transposed_c = (rnode is not None and rnode.op.name == "transpose"
                        and id(rnode.inputs[0]) not in fortran
                        and root.get(id(rnode.inputs[0]), id(rnode.inputs[0]))
                        == id(rnode.inputs[0]))
        lnode = producers.get(id(left))
        small = int(np.prod(left.shape)) <= FORTRAN_MAX_ELEMENTS
        if transposed_c and small and lnode is not None and lnode.op.kind == "elementwise":
            fortran.add(id(left))
    return fortran
