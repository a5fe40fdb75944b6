"""The autodiff pass: the backward graph, derived symbolically from each op's VJP rule.

``joint(graph, wrt)`` returns one graph computing the forward outputs and then the gradients
(nodes tagged ``fwd`` and ``bwd``); ``split(joint)`` cuts it into a forward graph that also
returns the values the backward reads, and a backward graph that takes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DTypeError
from ..ir.graph import Graph, Node, Value
from .symbolic import Emitter, Sym


def _depends(graph: Graph, wrt: Sequence[Value]) -> set[int]:
    """Ids of values that depend on ``wrt`` through differentiable float ops."""
    live = {id(v) for v in wrt}
    for node in graph.nodes:
        if (node.op.vjp is not None and node.out.dtype.kind == "f"
                and any(id(v) in live for v in node.inputs)):
            live.add(id(node.out))
    return live


@dataclass
class Joint:
    """A joint forward+backward graph: its outputs are the ``n_forward_outputs`` forward
    outputs, then one gradient per ``wrt`` value; with ``seed="input"`` its last
    ``n_cotangents`` inputs are the cotangents of the forward outputs ``cotangent_outputs``."""

    graph: Graph
    n_forward_outputs: int
    cotangent_outputs: list[int]
    n_cotangents: int


@dataclass
class Forward:
    """The forward part of a split: its outputs end with the ``n_saved`` values the backward
    reads."""

    graph: Graph
    n_saved: int


def joint(graph: Graph, wrt: Sequence[Value], seed: str = "ones") -> Joint:
    """Forward + backward of ``graph`` with respect to the values ``wrt``.

    ``seed="ones"`` starts from ones (the gradient of a loss); ``seed="input"`` adds a
    cotangent input ``grad_<output>`` per output that depends on ``wrt``. The graph's outputs:
    the forward outputs, then one gradient per ``wrt`` value (zeros where an output does not
    depend on it). The graph's in-place updates are kept.
    """
    for w in wrt:
        if w.dtype.kind != "f":
            raise DTypeError(f"autodiff: cannot differentiate with respect to {w.name} "
                             f"({w.dtype}); gradients need a float dtype")
    nodes = [Node(n.op, n.inputs, n.attrs, out=n.out, src=n.src, tag=n.tag or "fwd")
             for n in graph.nodes]
    out = Graph(f"{graph.name}_grad", list(graph.inputs), nodes, list(graph.outputs),
                dict(graph.meta), list(graph.updates))
    emitter = Emitter(out, tag="bwd")
    live = _depends(graph, wrt)
    grads: dict[int, Sym] = {}
    cotangent_outputs = []
    for k, v in enumerate(graph.outputs):
        if id(v) not in live:
            continue
        cotangent_outputs.append(k)
        if seed == "ones":
            cot = Sym(emitter.constant(np.ones(v.shape, v.dtype)), emitter)
        else:
            cot_value = Value(emitter.fresh(f"grad_{v.name}"), v.shape, v.dtype)
            out.inputs.append(cot_value)
            cot = Sym(cot_value, emitter)
        grads[id(v)] = grads[id(v)].add(cot) if id(v) in grads else cot
    wanted = {id(w) for w in wrt}
    for node in reversed(graph.nodes):
        # a wrt value keeps its gradient (it may be computed by a node, e.g. a parameter's
        # value after an update)
        g = grads.get(id(node.out)) if id(node.out) in wanted else grads.pop(id(node.out), None)
        if g is None or node.op.vjp is None:
            continue
        emitter.src = node.src
        needs = tuple(id(v) in live and v.dtype.kind == "f" for v in node.inputs)
        inputs = tuple(Sym(v, emitter) for v in node.inputs)
        result = Sym(node.out, emitter) if node.op.save_output else None
        for v, gi in zip(node.inputs, node.op.vjp(g, result, inputs, node.attrs, needs),
                         strict=True):
            if gi is None or id(v) not in live:
                continue
            if gi.dtype != v.dtype:
                gi = gi.astype(v.dtype)
            grads[id(v)] = grads[id(v)].add(gi) if id(v) in grads else gi
    emitter.src = None
    for w in wrt:
        g = grads.get(id(w))
        if g is None:
            g = Sym(emitter.constant(np.zeros(w.shape, w.dtype)), emitter)
        out.outputs.append(g.value)
    return Joint(out, len(graph.outputs), cotangent_outputs,
                 len(out.inputs) - len(graph.inputs))


def split(full: Joint) -> tuple[Forward, Graph]:
    """Cut a joint graph into (forward, backward).

    The forward returns its outputs followed by the saved values the backward reads (and keeps
    the in-place updates); the backward takes those saved values (then any cotangent inputs)
    and returns the gradients.
    """
    joint_graph = full.graph
    n_out = full.n_forward_outputs
    n_cot = full.n_cotangents
    fwd_inputs = joint_graph.inputs[:len(joint_graph.inputs) - n_cot]
    cotangents = joint_graph.inputs[len(fwd_inputs):]
    fwd_nodes = [n for n in joint_graph.nodes if n.tag != "bwd"]
    bwd_nodes = [n for n in joint_graph.nodes if n.tag == "bwd"]
    fwd_defined = {id(v) for v in fwd_inputs} | {id(n.out) for n in fwd_nodes}
    bwd_defined = {id(n.out) for n in bwd_nodes}
    saved: list[Value] = []
    seen: set[int] = set()
    for node in bwd_nodes:
        for v in node.inputs:
            if id(v) in fwd_defined and id(v) not in bwd_defined and id(v) not in seen:
                seen.add(id(v))
                saved.append(v)
    for v in joint_graph.outputs[n_out:]:
        if id(v) in fwd_defined and id(v) not in seen:
            seen.add(id(v))
            saved.append(v)
    forward = Graph(f"{joint_graph.name}_fwd", fwd_inputs, fwd_nodes,
                    list(joint_graph.outputs[:n_out]) + saved, updates=list(joint_graph.updates))
    backward = Graph(f"{joint_graph.name}_bwd", saved + cotangents, bwd_nodes,
                     list(joint_graph.outputs[n_out:]))
    return Forward(forward, len(saved)), backward
