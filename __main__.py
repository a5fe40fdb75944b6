"""``python -m aprender show FILE.json [--format text|dot|svg|png] [-o OUT]``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .errors import AprenderError
from .ir.display import find_renderer
from .ir.graph import Graph


def _printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped as ``repr`` does."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _escape_names(graph: Graph) -> None:
    """Make every string a loaded graph got from its file printable (names, source lines)."""
    graph.name = _printable(graph.name)
    for v in [*graph.inputs, *(n.out for n in graph.nodes)]:
        v.name = _printable(v.name)
    for node in graph.nodes:
        node.src = node.src and _printable(node.src)


def _fail(message: str) -> int:
    print(f"aprender show: {_printable(message)}", file=sys.stderr)
    return 2


def show(path: str, fmt: str, output: str | None) -> int:
    """Render a dumped JSON graph; returns the process exit code."""
    try:
        graph = Graph.from_json(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        return _fail(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})")
    except (OSError, AprenderError) as e:
        return _fail(str(e))
    _escape_names(graph)
    if fmt == "text":
        text = str(graph) + "\n"
    elif fmt == "dot":
        text = graph.to_dot()
    else:
        program = find_renderer()
        if program is None:
            return _fail(f"--format {fmt} needs Graphviz's `dot` program, which is not installed "
                         f"(e.g. `apt install graphviz`, or `pip install graphviz-pure`); "
                         f"--format dot writes the DOT text")
        target = output or str(Path(path).with_suffix(f".{fmt}"))
        done = subprocess.run([program, f"-T{fmt}", "-o", target], input=graph.to_dot(),
                              capture_output=True, text=True)
        if done.returncode != 0:
            return _fail(f"{Path(program).name} failed: {done.stderr.strip()}")
        print(target)
        return 0
    if output:
        Path(output).write_text(text)
        print(output)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aprender")
    sub = parser.add_subparsers(dest="command", required=True)
    show_cmd = sub.add_parser("show", help="render a graph dumped as JSON")
    show_cmd.add_argument("file")
    show_cmd.add_argument("--format", choices=["text", "dot", "svg", "png"], default="text")
    show_cmd.add_argument("-o", "--output", help="where to write (default: stdout for text/dot, "
                                                 "FILE.svg/.png for images)")
    args = parser.parse_args(argv)
    return show(args.file, args.format, args.output)


if __name__ == "__main__":
    sys.exit(main())
