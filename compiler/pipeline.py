"""The pass pipeline: graph -> (passes, each printed and timed) -> source -> executable."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..ir.dump import dump_graph
from ..ir.graph import Graph
from .codegen import Program, render
from .executor import Executable
from .passes import (
    cse,
    dce,
    decompose,
    fold_constants,
    fuse,
    lower_reductions,
    product_totals,
    relu_masks,
    schedule_collectives,
    simplify,
)

Pass = Callable[[Graph], Graph]
DEFAULT_PASSES: tuple[Pass, ...] = (fold_constants, simplify, decompose, lower_reductions,
                                     product_totals, cse, relu_masks, dce, fuse,
                                     schedule_collectives)


@dataclass
class Stage:
    """One step of the pipeline: the pass name, its time and the graph it produced."""

    name: str
    seconds: float
    graph: Graph

    def __str__(self) -> str:
        return f"# after {self.name} ({self.seconds * 1e3:.2f} ms)\n{self.graph}"


class CompiledGraph:
    """A graph lowered to generated numpy code. Call it with numpy arrays (one per graph
    input); it returns a tuple of arrays (one per output)."""

    def __init__(self, graph: Graph, stages: list[Stage], program: Program) -> None:
        self.graph = graph
        self.stages = stages
        self.program = program
        self.executable = Executable(program.source, program.fn_name, program.buffers,
                                     program.consts, program.kernels, program.line_map,
                                     graph.name)

    @property
    def source(self) -> str:
        return self.program.source

    def __call__(self, *arrays: Any) -> tuple:
        return self.executable(*arrays)

    def stage(self, name: str) -> Graph:
        """The graph after the pass called ``name`` (``"input"`` for the graph given)."""
        for s in self.stages:
            if s.name == name:
                return s.graph
        raise KeyError(f"no stage {name!r}; stages: {[s.name for s in self.stages]}")

    def print_stages(self) -> str:
        """Every stage's graph with the pass's name and time, then the generated source."""
        return "\n\n".join([*map(str, self.stages), "# generated source", self.source])

    def _repr_svg_(self) -> str | None:
        return self.graph._repr_svg_()  # Jupyter: the optimised graph

    def _repr_html_(self) -> str | None:
        return self.graph._repr_html_()


def lower(graph: Graph, passes: Sequence[Pass] = DEFAULT_PASSES) -> CompiledGraph:
    """Run ``passes`` over ``graph`` (verifying after each), render and load the code."""
    stages = [Stage("input", 0.0, graph.verify())]
    for p in passes:
        start = time.perf_counter()
        graph = p(graph)
        stages.append(Stage(p.__name__, time.perf_counter() - start, graph.verify()))
    start = time.perf_counter()
    program = render(graph)
    stages.append(Stage("codegen", time.perf_counter() - start, graph))
    dump_graph(graph, {".py": program.source})
    return CompiledGraph(graph, stages, program)
