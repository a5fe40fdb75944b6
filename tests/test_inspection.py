"""Looking at programs: DOT/networkx exports of fused graphs, dumps, the show command (hostile
names, unreadable files, SVG/PNG rendering) and generated source in linecache."""

from __future__ import annotations

import gc
import json
import linecache
import os
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

import aprender as ap
from aprender.__main__ import main
from aprender.autograd import Tensor
from aprender.compiler import lower
from aprender.compiler.executor import ExecutionError
from aprender.ir import Graph, Node, Value, get_op
from aprender.ir.graph import FusedNode

ROOT = Path(__file__).resolve().parents[1]


def two_outputs(x: Tensor) -> tuple[Tensor, Tensor]:
    y = x.exp().tanh()
    z = y.exp()
    return y.sum(), z


def _fused_graph() -> Graph:
    graph = lower(ap.trace(two_outputs, Tensor(np.ones((4, 3), dtype=np.float32)))).graph
    groups = [n for n in graph.nodes if isinstance(n, FusedNode)]
    assert len(groups) == 1 and [v.name for v in groups[0].outs] == ["tanh_1", "exp_2"]
    return graph


def test_dot_shows_every_output_and_the_body_of_a_fused_group() -> None:
    dot = _fused_graph().to_dot()
    assert "fused[3 ops]: exp, tanh, exp" in dot
    assert "tanh_1: f32[4,3]\\nexp_2: f32[4,3]" in dot
    assert 'n0 -> n1 [label="tanh_1: f32[4,3]"];' in dot  # group -> sum
    assert 'n0 -> out1 [label="exp_2: f32[4,3]"];' in dot
    assert 'n1 -> out0 [label="f32[]"];' in dot


def test_networkx_has_every_value_of_a_fused_group() -> None:
    g = _fused_graph().to_networkx()
    assert set(g.nodes) == {"x", "exp_0", "tanh_1", "exp_2", "sum_3"}
    assert [g.nodes[v]["fused"] for v in ("exp_0", "tanh_1", "exp_2", "sum_3")] == \
        ["tanh_1", "tanh_1", "tanh_1", None]
    assert g.nodes["exp_2"]["op"] == "exp" and g.nodes["exp_2"]["output"] == 1
    assert sorted(g.edges()) == [("exp_0", "tanh_1"), ("tanh_1", "exp_2"), ("tanh_1", "sum_3"),
                                 ("x", "exp_0")]


def test_compile_tour_runs_with_dumps_on(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["APRENDER_DUMP"] = str(tmp_path)
    done = subprocess.run([sys.executable, "examples/compile_tour.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.glob("*.dot"))


# --- python -m aprender show -------------------------------------------------------------------

def _hostile_json(tmp_path: Path) -> Path:
    x = Value("x\x1b[31m", (2,), np.float64)
    y = Value("y\nfake_line: f64[2] = relu x", (2,), np.float64)
    graph = Graph("g\x1b]0;title\x07", [x], [
        Node(get_op("relu"), (x,), {}, out=y, src="/tmp/a.py:3: y = \x1b[2J x.relu()\r"),
    ], [y])
    path = tmp_path / "evil.json"
    path.write_text(graph.to_json())
    assert Graph.from_json(path.read_text()).inputs[0].name == "x\x1b[31m"  # accepted on load
    return path


def _clean(text: str) -> bool:
    return all(c.isprintable() or c == "\n" for c in text)


@pytest.mark.parametrize("fmt, lines", [("text", 3), ("dot", 10)])
def test_show_escapes_control_characters_in_names(tmp_path, capsys, fmt, lines) -> None:
    assert main(["show", str(_hostile_json(tmp_path)), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert _clean(out) and len(out.splitlines()) == lines
    assert all(e in out for e in ("\\x1b[31m", "\\x1b[2J", "\\x07", "\\r", "\\nfake_line"))


@pytest.mark.parametrize("content, message", [
    (b'{"format": "aprender.ir", "name": "\xff\xfe"}', "is not UTF-8 text"),
    (b"{not json", "not valid JSON"),
    (json.dumps({"format": "aprender.ir", "version": 1, "name": "g",
                 "inputs": [{"name": "x", "shape": [2], "dtype": "float64"}],
                 "nodes": [{"op": "relu", "inputs": ["x"], "attrs": {"\x1b[31m\nk": [1]},
                            "out": {"name": "y", "shape": [2], "dtype": "float64"}}],
                 "outputs": ["y"]}).encode(), "must be tagged"),
])
def test_show_reports_bad_files_in_one_clean_line(tmp_path, capsys, content, message) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert main(["show", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("aprender show: ")
    assert message in captured.err and captured.err.count("\n") == 1 and _clean(captured.err)
    assert main(["show", str(tmp_path / "missing.json")]) == 2
    assert "No such file" in capsys.readouterr().err


def _graph_file(tmp_path: Path) -> Path:
    w = Tensor(np.ones((3, 2)))
    graph = ap.trace(lambda x: (x @ w).relu().sum(), Tensor(np.ones((4, 3))))
    path = tmp_path / "g.json"
    path.write_text(graph.to_json())
    return path


def test_show_renders_svg_and_png_without_system_graphviz(tmp_path, capsys) -> None:
    path = _graph_file(tmp_path)
    svg = tmp_path / "out.svg"
    assert main(["show", str(path), "--format", "svg", "-o", str(svg)]) == 0
    assert capsys.readouterr().out == f"{svg}\n"
    text = svg.read_text()
    assert "<svg" in text and all(op in text for op in ("matmul", "relu", "sum"))
    assert main(["show", str(path), "--format", "png"]) == 0
    assert path.with_suffix(".png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_show_explains_a_missing_renderer(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("aprender.ir.display.shutil.which", lambda *a, **k: None)
    assert main(["show", str(_graph_file(tmp_path)), "--format", "svg"]) == 2
    err = capsys.readouterr().err
    assert "needs Graphviz's `dot`" in err and "graphviz-pure" in err


# --- generated source in linecache -------------------------------------------------------------

def _generated_entries() -> int:
    return sum(1 for k in list(linecache.cache) if k.startswith("<aprender-generated"))


def test_dropped_executables_release_their_source() -> None:
    graph = ap.trace(lambda x: (x * 2.0).exp().sum(), Tensor(np.ones(3)))
    gc.collect()
    before = _generated_entries()
    for _ in range(50):
        lower(graph)(np.ones(3))
    gc.collect()
    assert _generated_entries() <= before


def test_live_executables_keep_source_for_tracebacks() -> None:
    w = Tensor(np.ones((3, 2)))
    compiled = lower(ap.trace(lambda x: (x @ w).relu(), Tensor(np.ones((4, 3)))))
    gc.collect()
    assert linecache.getline(compiled.executable.filename, 1).startswith("# Generated by aprender")
    with pytest.raises(ExecutionError) as info:
        compiled(np.ones((4, 5)), np.ones((3, 2)))
    text = "".join(traceback.format_exception(info.value.__cause__))
    assert compiled.executable.filename in text and "dot(" in text
    filename = compiled.executable.filename
    del compiled, info
    gc.collect()
    assert filename not in linecache.cache
