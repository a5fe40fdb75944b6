"""Graphs as SVG in notebooks: clusters for fused groups, colours by tag, hover text, the compact
layout of large graphs, the text fallback without a renderer, and examples/inspect.ipynb run in
a real kernel."""

from __future__ import annotations

import html
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import aprender as ap
from aprender import nn, optim
from aprender.autograd import Tensor
from aprender.compiler import lower
from aprender.errors import GraphError
from aprender.ir import Graph, Node, Value, display, get_op
from aprender.ir.export import to_dot
from aprender.ir.graph import FusedNode
from aprender.jit import CompiledFunction

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
XLINK_TITLE = "{http://www.w3.org/1999/xlink}title"
needs_renderer = pytest.mark.skipif(display.find_renderer() is None,
                                    reason="no Graphviz `dot` and no graphviz-pure")
BATCH, IN, HIDDEN, OUT = 6, 4, 8, 3


def _step() -> CompiledFunction:
    """A compiled SGD-momentum step of an MLP, called once (forward, backward, update)."""
    model = nn.MLP(IN, HIDDEN, OUT, rng=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x: np.ndarray, y: np.ndarray) -> Tensor:
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), y)  # the line hover text shows
        loss.backward()
        opt.step()
        return loss

    fast = ap.compile(step)
    fast(np.random.default_rng(0).standard_normal((BATCH, IN)).astype(np.float32),
         np.arange(BATCH) % OUT)
    return fast


def _svg_nodes(svg: str) -> dict[str, ET.Element]:
    """DOT node id -> its SVG group."""
    root = ET.fromstring(svg)
    return {g.find(f"{SVG}title").text: g for g in root.iter(f"{SVG}g")
            if g.get("class") == "node"}


def _fill(group: ET.Element) -> str:
    shape = group.find(f".//{SVG}polygon")
    return shape.get("fill") if shape is not None else group.find(f".//{SVG}path").get("fill")


def _tooltip(group: ET.Element) -> str:
    return group.find(f".//{SVG}a").get(XLINK_TITLE)


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


@needs_renderer
def test_step_svg_has_ops_fused_clusters_tag_colours_and_tooltips() -> None:
    graph = _step()._sections()[0][1]
    svg = display.to_svg(graph)
    root = ET.fromstring(svg)  # well-formed XML
    texts = " ".join(_texts(svg))
    for op in ("matmul", "relu", "log_softmax", "sub", "mul"):
        assert op in texts
    groups = [i for i, n in enumerate(graph.nodes) if isinstance(n, FusedNode)]
    assert len(groups) >= 3
    clusters = {g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g")
                if g.get("class") == "cluster"}
    assert clusters == {f"cluster_n{i}" for i in groups} | {"cluster_legend"}
    assert texts.count("fused[") == len(groups)
    nodes = _svg_nodes(svg)
    # each body op of a group is its own node inside the cluster
    for i in groups:
        for j, inner in enumerate(graph.nodes[i].body):
            assert f"{inner.op.name}" in " ".join(t.text or "" for t in
                                                   nodes[f"n{i}_{j}"].iter(f"{SVG}text"))
    # colours: forward, backward and update nodes each get their tag's colour
    fills = {}
    for i, node in enumerate(graph.nodes):
        if not isinstance(node, FusedNode):
            fills.setdefault(node.tag, set()).add(_fill(nodes[f"n{i}"]))
    assert fills == {"fwd": {"#dbe9ff"}, "bwd": {"#ffe0c2"}, "update": {"#d6f0cf"}}
    assert {t for t in texts.split(" ") if t in ("fwd:", "bwd:", "update:")} == \
        {"fwd:", "bwd:", "update:"}  # the legend
    # hover text: the first matmul (x @ fc1.weight) with its shape, dtype and source line
    first = graph.nodes[0]
    assert first.op.name == "matmul"
    tip = _tooltip(nodes["n0"])
    assert f"{first.out.name}: shape ({BATCH}, {HIDDEN}), dtype float32" in tip
    assert "test_display.py:" in tip and "the line hover text shows" in tip
    assert _tooltip(nodes["in0"]) == f"x: shape ({BATCH}, {IN}), dtype float32"


def test_a_fused_cluster_holds_only_its_body_ops() -> None:
    """DOT puts every node an edge names inside a subgraph into that subgraph: a cluster's
    block may name its body's nodes only."""
    graph = _step()._sections()[0][1]
    lines = to_dot(graph, clusters=True).splitlines()
    starts = [k for k, line in enumerate(lines) if line.startswith("  subgraph cluster_n")]
    assert len(starts) == sum(isinstance(n, FusedNode) for n in graph.nodes)
    for k in starts:
        group = lines[k].split("cluster_")[1].split(" ")[0]
        end = lines.index("  }", k)
        ids = re.findall(r"\b(?:in|n|out)\d+(?:_\d+)?\b", "\n".join(lines[k + 2:end]))
        assert ids and all(i.startswith(group + "_") for i in ids)


@needs_renderer
def test_large_graphs_draw_fused_groups_as_boxes_without_edge_labels(monkeypatch) -> None:
    graph = _step()._sections()[0][1]
    monkeypatch.setattr(display, "MAX_DETAILED", 20)
    svg = display.to_svg(graph)
    root = ET.fromstring(svg)
    clusters = [g for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"]
    assert [g.find(f"{SVG}title").text for g in clusters] == ["cluster_legend"]
    nodes = _svg_nodes(svg)
    i = next(i for i, n in enumerate(graph.nodes) if isinstance(n, FusedNode))
    body = ", ".join(n.op.name for n in graph.nodes[i].body)
    assert f"fused[{len(graph.nodes[i].body)} ops]: {body}" in \
        " ".join(t.text or "" for t in nodes[f"n{i}"].iter(f"{SVG}text"))
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    assert edges and not any(g.find(f"{SVG}text") is not None for g in edges)
    # detailed on request
    assert "cluster_n" in display.to_svg(graph, detailed=True)


@needs_renderer
def test_compiled_forward_shows_forward_and_backward_in_one_svg() -> None:
    w = Tensor(np.ones((3, 2))).requires_grad()
    fast = ap.compile(lambda x: (x @ w).tanh().exp().sum())
    fast(Tensor(np.ones((4, 3))).requires_grad())
    svg = fast._repr_svg_()
    root = ET.fromstring(svg)
    titles = {g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g")
              if g.get("class") == "cluster"}
    assert {"cluster_s0", "cluster_s1"} <= titles
    texts = _texts(svg)
    assert any(t.startswith("forward: ") for t in texts)
    assert any(t.startswith("backward: ") for t in texts)
    assert fast._repr_html_() is None  # the picture, not text


@needs_renderer
def test_compiled_graph_shows_its_optimised_graph() -> None:
    graph = ap.trace(lambda x: x.exp().tanh().sum(), Tensor(np.ones((4, 3), dtype=np.float32)))
    assert "cluster" not in " ".join(_texts(graph._repr_svg_()))
    compiled = lower(graph)
    svg = compiled._repr_svg_()
    assert "fused[2 ops]" in _texts(svg)  # the fuse pass's group, drawn as a cluster
    assert graph._repr_html_() is None and compiled._repr_html_() is None


@needs_renderer
def test_control_characters_in_names_keep_the_svg_valid_xml() -> None:
    x = Value("x\x1b[31m", (2,), np.float64)
    y = Value("y\x07", (2,), np.float64)
    graph = Graph("g\x1b]0;t\x07", [x], [Node(get_op("relu"), (x,), {}, out=y,
                                                 src="/tmp/a.py:3: y = \x1b[2J x.relu()\r")], [y])
    texts = _texts(display.to_svg(graph))
    assert "x\\x1b[31m" in texts and all(c.isprintable() for t in texts for c in t)


def test_text_fallback_without_a_renderer(monkeypatch) -> None:
    monkeypatch.setattr(display, "find_renderer", lambda: None)
    x = Value("x", (2,), np.float32)
    y = Value("y<b>&", (2,), np.float32)
    graph = Graph("g", [x], [Node(get_op("exp"), (x,), {}, out=y)], [y])
    assert graph._repr_svg_() is None
    page = graph._repr_html_()
    assert page == f"<pre>{html.escape(str(graph))}</pre>"
    assert "y&lt;b&gt;&amp;: f32[2] = exp x" in page
    with pytest.raises(GraphError, match=r"aprender\[viz\]"):
        display.to_svg(graph)
    fast = _step()
    assert fast._repr_svg_() is None
    text = fast._repr_html_()
    assert text.startswith("<pre>graph step(") and "[bwd]" in text and "[update]" in text


def test_compiled_function_before_a_call_says_nothing_is_compiled() -> None:
    fast = ap.compile(lambda x: x * 2.0)
    assert fast._repr_svg_() is None
    assert fast._repr_html_() == \
        "<pre>lambda: nothing compiled yet; call it once to see its graphs</pre>"


def test_inspect_notebook_runs_and_shows_svg(tmp_path, monkeypatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    if display.find_renderer() is None:
        pytest.skip("no Graphviz `dot` and no graphviz-pure")
    # a kernel spec for this interpreter, found before any user-wide "python3"
    spec = tmp_path / "kernels" / "aprender-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "aprender test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    path = ROOT / "examples" / "inspect.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # cleared
    nbclient.NotebookClient(nb, timeout=120, kernel_name="aprender-test",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    results = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if o.output_type == "execute_result"]
    svgs = [o.data["image/svg+xml"] for o in results if "image/svg+xml" in o.data]
    assert len(svgs) == 3  # the traced loss, the lowered graph, the compiled step
    for svg in svgs:
        ET.fromstring(svg)
    assert "update: update (optimizer step, in-place writes)" in _texts(svgs[-1])
    assert any("nothing compiled yet" in o.data.get("text/html", "") for o in results)
