"""Graph exports for tools: Graphviz DOT and networkx."""

from __future__ import annotations

from typing import Any

import networkx as nx

from .graph import FusedNode, Graph, Node, Value, format_attr, node_outputs, short_src, type_str


def _quote(text: str) -> str:
    """A DOT double-quoted string; every user-provided name goes through here."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _box_label(node: Node) -> str:
    """An op with its attributes, or a fused group with its body's ops; then the outputs."""
    if isinstance(node, FusedNode):
        ops = [n.op.name for n in node.body]
        head = f"fused[{len(ops)} ops]: " + ",\n".join(
            ", ".join(ops[i:i + 6]) for i in range(0, len(ops), 6))
    else:
        attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
        head = node.op.name + (f" [{attrs}]" if attrs else "")
    outs = [f"{v.name}: {type_str(v.shape, v.dtype)}" for v in node_outputs(node)]
    return "\n".join([head, *outs])


def to_dot(graph: Graph) -> str:
    """DOT text: inputs as ellipses, ops as boxes (a fused group as one box listing its body),
    outputs marked; edges carry shapes, and value names when they leave a fused group."""
    ends: dict[int, tuple[str, str]] = {}  # value -> (DOT node defining it, edge label)
    lines = [f"digraph {_quote(graph.name)} {{", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']

    def edge(v: Value, target: str) -> str:
        source, label = ends[id(v)]
        return f"  {source} -> {target} [label={_quote(label)}];"

    for i, v in enumerate(graph.inputs):
        ends[id(v)] = f"in{i}", type_str(v.shape, v.dtype)
        label = f"{v.name}\n{type_str(v.shape, v.dtype)}"
        lines.append(f"  in{i} [shape=ellipse, style=filled, fillcolor=lightblue, "
                     f"label={_quote(label)}];")
    for i, node in enumerate(graph.nodes):
        tooltip = short_src(node.src)
        fill = "lightyellow" if node.op.kind == "elementwise" else "white"
        lines.append(f"  n{i} [shape=box, style=filled, fillcolor={fill}, "
                     f"label={_quote(_box_label(node))}"
                     + (f", tooltip={_quote(tooltip)}" if tooltip else "") + "];")
        lines.extend(edge(v, f"n{i}") for v in node.inputs)
        for v in node_outputs(node):
            name = f"{v.name}: " if isinstance(node, FusedNode) else ""
            ends[id(v)] = f"n{i}", name + type_str(v.shape, v.dtype)
    for k, v in enumerate(graph.outputs):
        lines.append(f"  out{k} [shape=doublecircle, label={_quote(f'out {k}')}];")
        lines.append(edge(v, f"out{k}"))
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_networkx(graph: Graph) -> Any:
    """``networkx.MultiDiGraph``: nodes keyed by value name (inputs, op outputs and the values
    inside fused groups) with ``op``, ``shape``, ``dtype``, ``src``, ``attrs`` and ``fused`` (the
    group's first output name, else None) attributes; an edge per operand use."""
    g = nx.MultiDiGraph(name=graph.name)
    for v in graph.inputs:
        g.add_node(v.name, op="input", shape=v.shape, dtype=v.dtype.name, src=None)
    for node in graph.nodes:
        group = node.out.name if isinstance(node, FusedNode) else None
        for inner in node.body if isinstance(node, FusedNode) else [node]:
            out = inner.out
            g.add_node(out.name, op=inner.op.name, shape=out.shape, dtype=out.dtype.name,
                       src=inner.src, attrs=dict(inner.attrs), fused=group)
            for pos, v in enumerate(inner.inputs):
                g.add_edge(v.name, out.name, position=pos, shape=v.shape)
    for k, v in enumerate(graph.outputs):
        g.nodes[v.name]["output"] = k
    return g
