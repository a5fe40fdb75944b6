"""Graphs as pictures: SVG through Graphviz, and the rich display of Jupyter notebooks.

The renderer is Graphviz's ``dot`` when it is on PATH, else the ``graphviz-pure`` program (the
PyPI package of that name, ``pip install 'aprender[viz]'``: a self-contained port of ``dot``
with the same flags). Without either, notebooks show the graph's text form.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from ..errors import GraphError
from .export import drawn_nodes, to_dot, to_dot_sections
from .graph import Graph

#: graphs with more drawn nodes than this show each fused group as one box, without edge labels
MAX_DETAILED = 150
_TIMEOUT_S = 120


def find_renderer() -> str | None:
    """Graphviz's ``dot`` on PATH, else ``graphviz-pure`` next to this Python or on PATH."""
    return (shutil.which("dot")
            or shutil.which("graphviz-pure", path=os.path.dirname(sys.executable))
            or shutil.which("graphviz-pure"))


def render_svg(dot: str, what: str = "graph") -> str:
    """SVG text of DOT text ``dot``; raises ``GraphError`` naming ``what`` when no renderer is
    installed or it fails."""
    program = find_renderer()
    if program is None:
        raise GraphError(f"rendering {what} as SVG needs Graphviz's `dot` program or "
                         f"`pip install 'aprender[viz]'` (graphviz-pure)")
    try:
        done = subprocess.run([program, "-Tsvg"], input=dot, capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise GraphError(f"{os.path.basename(program)} took over {_TIMEOUT_S} s to render "
                         f"{what}") from e
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[0][:200]
        raise GraphError(f"{os.path.basename(program)} failed to render {what} "
                         f"(exit {done.returncode}): {first}")
    return done.stdout


def _detailed(graphs: Sequence[Graph], detailed: bool | None) -> bool:
    if detailed is not None:
        return detailed
    return sum(drawn_nodes(g) for g in graphs) <= MAX_DETAILED


def to_svg(graph: Graph, detailed: bool | None = None) -> str:
    """``graph`` as SVG, nodes coloured by tag, hover text with shapes, dtypes and source
    lines (see ``ir.export.to_dot``). ``detailed`` (default: up to ``MAX_DETAILED`` drawn
    nodes): fused groups as clusters of their ops and edges labelled with types; else fused
    groups as boxes and a compact layout that Graphviz finishes in seconds."""
    detail = _detailed([graph], detailed)
    return render_svg(to_dot(graph, clusters=detail, compact=not detail), graph.name)


def sections_to_svg(name: str, sections: Sequence[tuple[str, Graph]],
                    detailed: bool | None = None) -> str:
    """Several titled graphs in one SVG (e.g. ``[("forward", f), ("backward", b)]``)."""
    detail = _detailed([g for _, g in sections], detailed)
    return render_svg(to_dot_sections(name, sections, clusters=detail, compact=not detail),
                      name)


def repr_svg(name: str, sections: Sequence[tuple[str, Graph]]) -> str | None:
    """A notebook's ``_repr_svg_``: the SVG of one graph (its title unused) or of several;
    None when there is nothing to draw or no renderer (``repr_html`` then shows text)."""
    if not sections or find_renderer() is None:
        return None
    if len(sections) == 1:
        return to_svg(sections[0][1])
    return sections_to_svg(name, sections)


def repr_html(name: str, sections: Sequence[tuple[str, Graph]]) -> str | None:
    """A notebook's ``_repr_html_``: None when ``repr_svg`` draws; else the graphs' text in
    ``<pre>`` (titled when several), or a line saying there is nothing to show yet."""
    if sections and find_renderer() is not None:
        return None
    if not sections:
        text = f"{name}: nothing compiled yet; call it once to see its graphs"
    elif len(sections) == 1:
        text = str(sections[0][1])
    else:
        text = "\n\n".join(f"## {title}\n{graph}" for title, graph in sections)
    return f"<pre>{html.escape(text)}</pre>"
