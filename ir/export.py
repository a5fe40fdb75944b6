"""Graph exports for tools: Graphviz DOT and networkx."""

from __future__ import annotations

from typing import Any

import networkx as nx

from .graph import Graph, format_attr, short_src, type_str


def _quote(text: str) -> str:
    """A DOT double-quoted string; every user-provided name goes through here."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    """DOT text: inputs as ellipses, ops as boxes, outputs marked; edges carry shapes."""
    ids: dict[int, str] = {}
    lines = [f"digraph {_quote(graph.name)} {{", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for i, v in enumerate(graph.inputs):
        ids[id(v)] = f"in{i}"
        label = f"{v.name}\n{type_str(v.shape, v.dtype)}"
        lines.append(f"  in{i} [shape=ellipse, style=filled, fillcolor=lightblue, "
                     f"label={_quote(label)}];")
    for i, node in enumerate(graph.nodes):
        ids[id(node.out)] = f"n{i}"
        attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
        label = f"{node.op.name}" + (f" [{attrs}]" if attrs else "")
        label += f"\n{node.out.name}: {type_str(node.out.shape, node.out.dtype)}"
        tooltip = short_src(node.src)
        fill = "lightyellow" if node.op.kind == "elementwise" else "white"
        lines.append(f"  n{i} [shape=box, style=filled, fillcolor={fill}, label={_quote(label)}"
                     + (f", tooltip={_quote(tooltip)}" if tooltip else "") + "];")
        for v in node.inputs:
            lines.append(f"  {ids[id(v)]} -> n{i} [label={_quote(type_str(v.shape, v.dtype))}];")
    for k, v in enumerate(graph.outputs):
        lines.append(f"  out{k} [shape=doublecircle, label={_quote(f'out {k}')}];")
        lines.append(f"  {ids[id(v)]} -> out{k} [label={_quote(type_str(v.shape, v.dtype))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_networkx(graph: Graph) -> Any:
    """``networkx.MultiDiGraph``: nodes keyed by value name (inputs and op outputs) with ``op``,
    ``shape``, ``dtype`` and ``src`` attributes; an edge per operand use."""
    g = nx.MultiDiGraph(name=graph.name)
    for v in graph.inputs:
        g.add_node(v.name, op="input", shape=v.shape, dtype=v.dtype.name, src=None)
    for node in graph.nodes:
        out = node.out
        g.add_node(out.name, op=node.op.name, shape=out.shape, dtype=out.dtype.name,
                   src=node.src, attrs=dict(node.attrs))
        for pos, v in enumerate(node.inputs):
            g.add_edge(v.name, out.name, position=pos, shape=v.shape)
    for k, v in enumerate(graph.outputs):
        g.nodes[v.name]["output"] = k
    return g
