"""``python -m aprender show FILE.json [--format text|dot|svg|png] [-o OUT]``."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import AprenderError
from .ir.graph import Graph


def show(path: str, fmt: str, output: str | None) -> int:
    """Render a dumped JSON graph; returns the process exit code."""
    try:
        graph = Graph.from_json(Path(path).read_text())
    except (OSError, AprenderError) as e:
        print(f"aprender show: {e}", file=sys.stderr)
        return 2
    if fmt == "text":
        text = str(graph) + "\n"
    elif fmt == "dot":
        text = graph.to_dot()
    else:
        dot = shutil.which("dot")
        if dot is None:
            print(f"aprender show: --format {fmt} needs Graphviz's `dot` program, which is not "
                  f"installed (e.g. `apt install graphviz`); --format dot writes the DOT text",
                  file=sys.stderr)
            return 2
        target = output or str(Path(path).with_suffix(f".{fmt}"))
        subprocess.run([dot, f"-T{fmt}", "-o", target], input=graph.to_dot(), text=True,
                       check=True)
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
