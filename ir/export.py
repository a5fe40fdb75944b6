"""Graph exports for tools: Graphviz DOT and networkx."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx

from .graph import FusedNode, Graph, Node, Value, format_attr, node_outputs, short_src, type_str

#: fill colour and legend text of each node tag (see ``Node.tag``): a compiled training step
#: tags its forward, backward and optimizer-update nodes
TAG_STYLES: dict[str, tuple[str, str]] = {
    "": ("white", "untagged"),
    "fwd": ("#dbe9ff", "forward"),
    "bwd": ("#ffe0c2", "backward"),
    "update": ("#d6f0cf", "update (optimizer step, in-place writes)"),
}
_OTHER_TAG = "#eeeeee"


def _quote(text: str) -> str:
    """A DOT double-quoted string; every user-provided name goes through here. Control
    characters are written as Python escapes, so rendered SVG stays valid XML; ``&`` is written
    as an entity, so Graphviz never decodes a character reference inside a name."""
    text = text.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"') \
        .replace("\n", "\\n")
    return '"' + "".join(c if c.isprintable() else "\\" + repr(c)[1:-1] for c in text) + '"'


def _value_tip(v: Value) -> str:
    return f"{v.name}: shape {v.shape}, dtype {v.dtype.name}"


def _tooltip(values: list[Value], srcs: list[str | None]) -> str:
    """Hover text: each value's name, shape and dtype, then the distinct source lines."""
    lines = [_value_tip(v) for v in values]
    lines.extend(dict.fromkeys(s for s in map(short_src, srcs) if s))
    return "\n".join(lines)


def _op_head(node: Node) -> str:
    attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
    return node.op.name + (f" [{attrs}]" if attrs else "")


def _box_label(node: Node) -> str:
    """An op with its attributes, or a fused group with its body's ops; then the outputs."""
    if isinstance(node, FusedNode):
        ops = [n.op.name for n in node.body]
        head = f"fused[{len(ops)} ops]: " + ",\n".join(
            ", ".join(ops[i:i + 6]) for i in range(0, len(ops), 6))
    else:
        head = _op_head(node)
    outs = [f"{v.name}: {type_str(v.shape, v.dtype)}" for v in node_outputs(node)]
    return "\n".join([head, *outs])


def drawn_nodes(graph: Graph) -> int:
    """How many DOT nodes the graph has with fused groups expanded (inputs, ops, outputs)."""
    ops = sum(len(n.body) if isinstance(n, FusedNode) else 1 for n in graph.nodes)
    return len(graph.inputs) + ops + len(graph.outputs)


def _tags(graphs: Sequence[Graph]) -> list[str]:
    """The tags used, in legend order; empty when no node is tagged."""
    used = {n.tag for g in graphs for n in g.nodes}
    if used <= {""}:
        return []
    return [t for t in TAG_STYLES if t in used] + sorted(used - TAG_STYLES.keys())


class _DotWriter:
    """DOT statements of one graph; node ids start with ``prefix`` (``in0``, ``n3``,
    ``n3_1`` inside fused group 3, ``out0``)."""

    def __init__(self, graph: Graph, prefix: str, clusters: bool, tagged: bool,
                 edge_labels: bool) -> None:
        self.graph, self.prefix, self.clusters, self.tagged = graph, prefix, clusters, tagged
        self.edge_labels = edge_labels
        self.ends: dict[int, tuple[str, str]] = {}  # value -> (DOT node defining it, label)
        self.lines: list[str] = []

    def fill(self, node: Node) -> str:
        if self.tagged:
            return TAG_STYLES.get(node.tag, (_OTHER_TAG, ""))[0]
        return "lightyellow" if node.op.kind == "elementwise" else "white"

    def edge(self, v: Value, target: str) -> None:
        source, label = self.ends[id(v)]
        if self.edge_labels:
            self.lines.append(f"  {source} -> {target} [label={_quote(label)}];")
        else:
            self.lines.append(f"  {source} -> {target};")

    def box(self, name: str, node: Node, label: str, tip: str, indent: str = "  ") -> None:
        self.lines.append(f"{indent}{name} [shape=box, style=filled, "
                          f"fillcolor={_quote(self.fill(node))}, label={_quote(label)}, "
                          f"tooltip={_quote(tip)}];")

    def expandable(self, group: FusedNode) -> bool:
        """Whether every value the body reads from outside is drawn (a pass that substituted
        the group's inputs without rewriting its body leaves it a box)."""
        inside: set[int] = set()
        for inner in group.body:
            if any(id(v) not in inside and id(v) not in self.ends for v in inner.inputs):
                return False
            inside.add(id(inner.out))
        return True

    def write(self) -> list[str]:
        p, graph = self.prefix, self.graph
        for i, v in enumerate(graph.inputs):
            self.ends[id(v)] = f"{p}in{i}", type_str(v.shape, v.dtype)
            label = f"{v.name}\n{type_str(v.shape, v.dtype)}"
            self.lines.append(f"  {p}in{i} [shape=ellipse, style=filled, fillcolor=lightblue, "
                              f"label={_quote(label)}, tooltip={_quote(_value_tip(v))}];")
        for i, node in enumerate(graph.nodes):
            if isinstance(node, FusedNode) and self.clusters and self.expandable(node):
                self.cluster(f"{p}n{i}", node)
                continue
            srcs = [n.src for n in node.body] if isinstance(node, FusedNode) else [node.src]
            self.box(f"{p}n{i}", node, _box_label(node), _tooltip(node_outputs(node), srcs))
            for v in node.inputs:
                self.edge(v, f"{p}n{i}")
            for v in node_outputs(node):
                name = f"{v.name}: " if isinstance(node, FusedNode) else ""
                self.ends[id(v)] = f"{p}n{i}", name + type_str(v.shape, v.dtype)
        updated = {k: graph.inputs[j].name for j, k in graph.updates}
        for k, v in enumerate(graph.outputs):
            if k in updated:
                self.lines.append(f"  {p}out{k} [shape=box, style=\"rounded,dashed\", "
                                  f"label={_quote(f'out {k}: update {updated[k]}')}];")
            else:
                self.lines.append(f"  {p}out{k} [shape=doublecircle, "
                                  f"label={_quote(f'out {k}')}];")
            self.edge(v, f"{p}out{k}")
        return self.lines

    def cluster(self, name: str, group: FusedNode) -> None:
        """A fused group as a dashed cluster of its body's ops."""
        outs = ", ".join(v.name for v in group.outs)
        self.lines.append(f"  subgraph cluster_{name} {{")
        self.lines.append(f"    label={_quote(f'fused[{len(group.body)} ops]')}; "
                          f"tooltip={_quote('fused group; outputs: ' + outs)}; "
                          f"style=\"rounded,dashed\"; fontsize=9;")
        for j, inner in enumerate(group.body):
            out = inner.out
            label = f"{_op_head(inner)}\n{out.name}: {type_str(out.shape, out.dtype)}"
            self.box(f"{name}_{j}", inner, label, _tooltip([out], [inner.src]), "    ")
        self.lines.append("  }")
        for j, inner in enumerate(group.body):  # outside the cluster, which would take in
            for v in inner.inputs:                # every node an edge inside it names
                self.edge(v, f"{name}_{j}")
            self.ends[id(inner.out)] = f"{name}_{j}", type_str(inner.out.shape, inner.out.dtype)


def _legend(tags: list[str]) -> list[str]:
    if not tags:
        return []
    lines = ['  subgraph cluster_legend {', '    label="tags"; style=dashed; fontsize=9;']
    for k, tag in enumerate(tags):
        colour, meaning = TAG_STYLES.get(tag, (_OTHER_TAG, tag))
        text = f"{tag or '(none)'}: {meaning}"
        lines.append(f"    legend{k} [shape=box, style=filled, fillcolor={_quote(colour)}, "
                     f"label={_quote(text)}];")
    return [*lines, "  }"]


def _header(name: str, compact: bool) -> list[str]:
    # newrank: dot's default ranking fails ("trouble in init_rank") on some clustered graphs.
    # compact: spline routing around edge labels and an unbounded network simplex take
    # minutes on a training step of a few hundred ops; straight edges and capped iterations
    # take seconds
    layout = " splines=line; nslimit=2; mclimit=0.2;" if compact else ""
    return [f"digraph {_quote(name)} {{",
            f'  rankdir=TB; newrank=true; fontname="Helvetica";{layout}',
            '  node [fontname="Helvetica", fontsize=10];',
            '  edge [fontname="Helvetica", fontsize=9];']


def to_dot(graph: Graph, clusters: bool = False, compact: bool = False) -> str:
    """DOT text: inputs as ellipses, ops as boxes, outputs marked (an in-place update names
    its input); edges carry shapes, and value names when they leave a fused group. A fused
    group is one box listing its body, or with ``clusters`` a cluster of its body's ops.
    Nodes of a tagged graph (a compiled step: fwd / bwd / update) are coloured by tag, with a
    legend; untagged, element-wise ops are yellow. Hover text gives shapes, dtypes and the
    user's source lines. ``compact`` (for large graphs): no edge labels, straight edges and a
    bounded layout effort, so Graphviz takes seconds rather than minutes."""
    tags = _tags([graph])
    body = _DotWriter(graph, "", clusters, bool(tags), not compact).write()
    return "\n".join([*_header(graph.name, compact), *body, *_legend(tags), "}"]) + "\n"


def to_dot_sections(name: str, sections: Sequence[tuple[str, Graph]],
                    clusters: bool = False, compact: bool = False) -> str:
    """Several graphs in one DOT picture (e.g. a compiled forward and its backward), each a
    cluster titled by its label; nodes as in ``to_dot``, ids prefixed ``s0_``, ``s1_``, ..."""
    tags = _tags([g for _, g in sections])
    lines = _header(name, compact)
    for k, (title, graph) in enumerate(sections):
        lines.append(f"  subgraph cluster_s{k} {{")
        lines.append(f"    label={_quote(f'{title}: {graph.name}')}; style=rounded;")
        lines.extend("  " + line for line in
                     _DotWriter(graph, f"s{k}_", clusters, bool(tags), not compact).write())
        lines.append("  }")
    return "\n".join([*lines, *_legend(tags), "}"]) + "\n"


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
