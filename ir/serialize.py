"""JSON form of a graph. Loading validates everything and never executes or imports code.

Schema, version 1::

    {"format": "aprender.ir", "version": 1, "name": str,
     "inputs":  [{"name": str, "shape": [int, ...], "dtype": str}, ...],
     "nodes":   [{"op": str, "inputs": [value name, ...], "attrs": {str: attr},
                  "out": {"name": str, "shape": [...], "dtype": str}, "src": str | null}, ...],
     "outputs": [value name, ...]}

An ``attr`` is a JSON number, string, bool or null, or one of the tagged objects
``{"tuple": [attr, ...]}``, ``{"slice": [start, stop, step]}``, ``{"ellipsis": true}``,
``{"operand": k}`` (an index array: the node's input k),
``{"dtype": str}``, ``{"float": "inf" | "-inf" | "nan"}`` and
``{"array": nested lists, "dtype": str, "shape": [int, ...]}``. dtypes are numpy names of
bool, integer and floating types only.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..errors import AprenderError
from .graph import Graph, Node, Value
from .registry import Operand, all_ops

FORMAT, VERSION = "aprender.ir", 1
MAX_DEPTH = 32
MAX_ELEMENTS = 10_000_000
DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                    "uint64", "float16", "float32", "float64"})


class IRFormatError(AprenderError, ValueError):
    """A JSON graph that does not follow the schema."""


# --- writing -----------------------------------------------------------------------------------

def _encode(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, tuple | list):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, slice):
        return {"slice": [_encode(value.start), _encode(value.stop), _encode(value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, Operand):
        return {"operand": value.position}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"dtype": np.dtype(value).name}
    if isinstance(value, np.ndarray):
        flat = [_encode(v) for v in value.reshape(-1).tolist()]
        return {"array": flat, "dtype": value.dtype.name, "shape": list(value.shape)}
    raise TypeError(f"cannot write attribute {value!r} of type {type(value).__name__} to JSON")


def _value(v: Value) -> dict[str, Any]:
    return {"name": v.name, "shape": list(v.shape), "dtype": v.dtype.name}


def to_json(graph: Graph) -> str:
    """Serialize ``graph`` (schema in this module's docstring). Fused graphs (after the
    compiler's ``fuse`` pass) are for printing; serialize the graph before fusion."""
    if any(n.op.name == "fused" for n in graph.nodes):
        raise IRFormatError("to_json: fused groups are not part of the JSON schema; serialize "
                            "the graph from a stage before `fuse`")
    doc = {
        "format": FORMAT, "version": VERSION, "name": graph.name,
        "inputs": [_value(v) for v in graph.inputs],
        "nodes": [{"op": n.op.name, "inputs": [v.name for v in n.inputs],
                   "attrs": {k: _encode(v) for k, v in n.attrs.items()},
                   "out": _value(n.out), "src": n.src} for n in graph.nodes],
        "outputs": [v.name for v in graph.outputs],
    }
    return json.dumps(doc, indent=1)


# --- reading -----------------------------------------------------------------------------------

def _fail(where: str, message: str) -> IRFormatError:
    return IRFormatError(f"from_json: {where}: {message}")


def _expect(obj: Any, kind: type | tuple, where: str) -> Any:
    if not isinstance(obj, kind) or (kind is int and isinstance(obj, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _fail(where, f"expected {names}, got {type(obj).__name__}")
    return obj


def _dtype(obj: Any, where: str) -> np.dtype:
    if not isinstance(obj, str) or obj not in DTYPES:
        raise _fail(where, f"unsupported dtype {str(obj)[:40]!r}")
    return np.dtype(obj)


def _shape(obj: Any, where: str) -> tuple[int, ...]:
    _expect(obj, list, where)
    if len(obj) > 32 or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d
                                for d in obj):
        raise _fail(where, "a shape is a list of at most 32 non-negative ints")
    if math.prod(obj) > MAX_ELEMENTS:
        raise _fail(where, f"shape {obj} is too large")
    return tuple(obj)


def _scalar(obj: Any, where: str) -> Any:
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj
    if isinstance(obj, dict) and set(obj) == {"float"} and obj["float"] in ("inf", "-inf",
                                                                              "nan"):
        return float(obj["float"])
    raise _fail(where, f"bad scalar {str(obj)[:40]}")


def _decode(obj: Any, where: str, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _fail(where, "attribute nested too deeply")
    if not isinstance(obj, dict):
        if isinstance(obj, list):
            raise _fail(where, "lists must be tagged as {\"tuple\": [...]}")
        return _scalar(obj, where)
    keys = set(obj)
    if keys == {"tuple"}:
        items = _expect(obj["tuple"], list, where)
        return tuple(_decode(v, where, depth + 1) for v in items)
    if keys == {"slice"}:
        parts = _expect(obj["slice"], list, where)
        if len(parts) != 3 or not all(p is None or (isinstance(p, int) and not isinstance(
                p, bool)) for p in parts):
            raise _fail(where, "a slice is [start, stop, step] of ints or nulls")
        return slice(*parts)
    if keys == {"ellipsis"} and obj["ellipsis"] is True:
        return Ellipsis
    if keys == {"operand"}:
        position = obj["operand"]
        if not isinstance(position, int) or isinstance(position, bool) or position < 1:
            raise _fail(where, "an operand reference is a positive int")
        return Operand(position)
    if keys == {"dtype"}:
        return _dtype(obj["dtype"], where)
    if keys == {"array", "dtype", "shape"}:
        dtype, shape = _dtype(obj["dtype"], where), _shape(obj["shape"], where)
        flat = _expect(obj["array"], list, where)
        if len(flat) != math.prod(shape):
            raise _fail(where, "array data does not match its shape")
        values = [_scalar(v, where) for v in flat]
        if any(isinstance(v, str) or v is None for v in values):
            raise _fail(where, "array elements must be numbers")
        return np.array(values, dtype=dtype).reshape(shape)
    if keys == {"float"}:
        return _scalar(obj, where)
    raise _fail(where, f"unknown attribute form with keys {sorted(keys)[:5]}")


def _read_value(obj: Any, where: str) -> Value:
    _expect(obj, dict, where)
    if set(obj) != {"name", "shape", "dtype"}:
        raise _fail(where, "a value has exactly name, shape and dtype")
    name = _expect(obj["name"], str, where + ".name")
    if not name or len(name) > 200:
        raise _fail(where, "a value name is a non-empty string of at most 200 characters")
    return Value(name, _shape(obj["shape"], where + ".shape"), _dtype(obj["dtype"], where))


def from_json(text: str | bytes) -> Graph:
    """Parse and validate a graph; raises ``IRFormatError`` on anything off-schema."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise IRFormatError(f"from_json: not valid JSON: {str(e)[:200]}") from None
    _expect(doc, dict, "document")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise _fail("document", f"expected format {FORMAT!r} version {VERSION}")
    extra = set(doc) - {"format", "version", "name", "inputs", "nodes", "outputs"}
    if extra:
        raise _fail("document", f"unknown keys {sorted(extra)[:5]}")
    name = _expect(doc.get("name"), str, "name")
    ops = all_ops()
    env: dict[str, Value] = {}
    inputs = []
    for i, item in enumerate(_expect(doc.get("inputs"), list, "inputs")):
        value = _read_value(item, f"inputs[{i}]")
        if value.name in env:
            raise _fail(f"inputs[{i}]", f"name {value.name!r} is defined twice")
        env[value.name] = value
        inputs.append(value)
    nodes = []
    for i, item in enumerate(_expect(doc.get("nodes"), list, "nodes")):
        where = f"nodes[{i}]"
        _expect(item, dict, where)
        if set(item) - {"op", "inputs", "attrs", "out", "src"}:
            raise _fail(where, "unknown node keys")
        op_name = _expect(item.get("op"), str, where + ".op")
        if op_name not in ops:
            raise _fail(where, f"unknown op {op_name[:60]!r}")
        operands = []
        for ref in _expect(item.get("inputs"), list, where + ".inputs"):
            if not isinstance(ref, str) or ref not in env:
                raise _fail(where, f"operand {str(ref)[:60]!r} is not defined before use")
            operands.append(env[ref])
        attrs_obj = _expect(item.get("attrs", {}), dict, where + ".attrs")
        attrs = {_expect(k, str, where): _decode(v, f"{where}.attrs.{k[:40]}")
                 for k, v in attrs_obj.items()}
        if set(attrs) != set(ops[op_name].attrs):
            raise _fail(where, f"{op_name} takes attributes {list(ops[op_name].attrs)}, got "
                               f"{sorted(attrs)[:10]}")
        out = _read_value(item.get("out"), where + ".out")
        if out.name in env:
            raise _fail(where, f"name {out.name!r} is defined twice")
        src = item.get("src")
        if src is not None:
            src = _expect(src, str, where + ".src")[:500]
        env[out.name] = out
        nodes.append(Node(ops[op_name], tuple(operands), attrs, out=out, src=src))
    outputs = []
    for ref in _expect(doc.get("outputs"), list, "outputs"):
        if not isinstance(ref, str) or ref not in env:
            raise _fail("outputs", f"{str(ref)[:60]!r} is not defined")
        outputs.append(env[ref])
    graph = Graph(name, inputs, nodes, outputs)
    try:
        graph.verify()
    except AprenderError as e:
        raise IRFormatError(f"from_json: {e}") from None
    return graph
