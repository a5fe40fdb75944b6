"""``APRENDER_DUMP=DIR``: write graphs (and generated source) to DIR as programs run."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

from .graph import Graph

ENV_VAR = "APRENDER_DUMP"
_counter = itertools.count()


def dump_dir() -> Path | None:
    """The dump folder from the environment, or None when dumping is off."""
    target = os.environ.get(ENV_VAR)
    return Path(target) if target else None


def dump_graph(graph: Graph, extra: dict[str, str] | None = None) -> list[Path]:
    """Write ``graph`` as ``.txt``, ``.dot`` and ``.json`` (plus ``extra`` suffix -> text) under
    the dump folder, with a stem unique per process and call; returns the paths written."""
    folder = dump_dir()
    if folder is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", graph.name)[:60] or "graph"
    stem = f"{safe}-{os.getpid()}-{next(_counter):04d}"
    files = {".txt": str(graph) + "\n", ".dot": graph.to_dot()}
    if not any(n.op.name == "fused" for n in graph.nodes):  # fused groups have no JSON form
        files[".json"] = graph.to_json()
    files.update(extra or {})
    paths = []
    for suffix, text in files.items():
        path = folder / f"{stem}{suffix}"
        path.write_text(text)
        paths.append(path)
    return paths
