"""Op test cases shared by every op family: ``Case`` and the checks each case gets.

Each family lists its cases in ``tests/cases_<family>.py`` (``CASES``, and ``INDIRECT``: op names
tested only through other ops, with the reason in a comment); ``tests/test_ops.py`` runs every
check on every case: values against a numpy reference (float64 and float32), first- and
second-order gradients against finite differences in float64, the shape rule against the
kernel, and the compiled forward and gradient against eager.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gradcheck import check_first_order, check_second_order

import aprender as ap
from aprender.autograd import Tensor


def uniform(lo: float, hi: float) -> Callable:
    """A sampler of values uniform in ``[lo, hi]``."""
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def away_from(points: list[float], lo: float = -2.0, hi: float = 2.0,
              gap: float = 0.05) -> Callable:
    """A sampler of values in [lo, hi] at least ``gap`` from each of ``points`` (kinks)."""
    def sample(rng: np.random.Generator, shape: tuple) -> np.ndarray:
        x = rng.uniform(lo, hi, shape)
        for p in points:
            near = np.abs(x - p) < gap
            x[near] = p + np.where(x[near] >= p, gap, -gap) * 2
        return x
    return sample


def distinct(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Values with no ties (maxima, sorting, pooling)."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 + rng.uniform(0, 0.01, shape)


@dataclass
class Case:
    """``fn(*tensors, *fixed)`` against ``ref(*arrays, *fixed)``: ``shapes`` are the float
    inputs (sampled by ``sample``, differentiated), ``fixed`` numpy values passed as they are
    (indices, masks; a compiled call takes them as arguments)."""

    name: str
    fn: Callable[..., Tensor]
    ref: Callable[..., np.ndarray]
    shapes: tuple
    sample: Callable = uniform(-2, 2)
    second_order: bool = True
    fixed: tuple = ()
    #: whether the output is differentiable (False: ints/bools, or a gradient that is zero)
    grads: bool = True
    rtol: float = 1e-12


def inputs(case: Case, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.asarray(case.sample(rng, s), dtype=np.float64) for s in case.shapes]


def _bind(case: Case) -> Callable[..., Tensor]:
    return lambda *xs: case.fn(*xs, *case.fixed)


def traceable(case: Case) -> tuple[Callable[..., Tensor], list[np.ndarray]]:
    """``(fn, extra)``: ``fn(*float inputs, *extra)`` runs the case with its numpy ``fixed``
    arrays (``extra``) passed as arguments, so a traced graph takes them as inputs after the
    float inputs."""
    n = len(case.shapes)
    fixed = list(case.fixed)
    slots = [i for i, f in enumerate(fixed) if isinstance(f, np.ndarray)]

    def fn(*xs: Any) -> Tensor:
        args = list(fixed)
        for i, x in zip(slots, xs[n:], strict=True):
            args[i] = x
        return case.fn(*xs[:n], *args)

    return fn, [fixed[i] for i in slots]


def check_values(case: Case) -> None:
    arrays = inputs(case)
    out = case.fn(*[Tensor(a) for a in arrays], *case.fixed)
    expected = np.asarray(case.ref(*arrays, *case.fixed))
    assert out.shape == expected.shape, (out.shape, expected.shape)
    assert out.dtype == (np.float64 if expected.dtype.kind == "f" else expected.dtype)
    np.testing.assert_allclose(out.data(), expected, rtol=case.rtol, atol=case.rtol)


def check_float32(case: Case) -> None:
    arrays = [a.astype(np.float32) for a in inputs(case)]
    out = case.fn(*[Tensor(a) for a in arrays], *case.fixed)
    expected = np.asarray(case.ref(*arrays, *case.fixed))
    if expected.dtype.kind == "f":
        assert out.dtype == np.float32
    np.testing.assert_allclose(out.data(), expected, rtol=1e-5, atol=1e-5)


def check_first(case: Case) -> None:
    if case.grads:
        check_first_order(_bind(case), inputs(case))


def check_second(case: Case) -> None:
    if case.grads and case.second_order:
        check_second_order(_bind(case), inputs(case))


def nodes_of(t: Tensor) -> list:
    seen, stack, out = set(), [t._node], []
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        out.append(n)
        stack.extend(i._node for i in n.inputs)
    return out


def check_shape_rule(case: Case) -> set[str]:
    """Every recorded node's shape rule agrees with its kernel, in the forward and in the
    backward (recorded with a seed that requires grad); returns the op names seen."""
    xs = [Tensor(a.astype(np.float32)).requires_grad() for a in inputs(case)]
    out = case.fn(*xs, *case.fixed)
    nodes = nodes_of(out)
    if case.grads and out.requires_grad_enabled():
        seed = Tensor(np.ones(out.shape, np.float32)).requires_grad()
        (out * seed).sum().backward(create_graph=True)
        nodes += [n for x in xs if x.grad() is not None for n in nodes_of(x.grad())]
    for node in nodes:
        shape, dtype = node.op.infer(*node.inputs, **node.attrs)
        assert shape == node.value.shape, node.op.name
        assert dtype == node.value.dtype, node.op.name
    return {node.op.name for node in nodes}


def check_compiled(case: Case) -> None:
    """The compiled step (forward, backward of a weighted sum) equals eager, on two calls with
    different values (the second proves nothing was baked in)."""
    shape_probe = case.fn(*[Tensor(a) for a in inputs(case)], *case.fixed)
    weights = Tensor(np.random.default_rng(3).uniform(0.5, 1.5, shape_probe.shape))
    differentiable = case.grads and shape_probe.dtype.kind == "f"

    def step(*args: Any) -> Any:
        out = case.fn(*args)
        if differentiable:
            (out * weights).sum().backward()
        return out

    fast = ap.compile(step)
    for seed in (0, 1):
        arrays = inputs(case, seed)
        results = []
        for run in (step, fast):
            xs = [Tensor(a).requires_grad(differentiable) for a in arrays]
            out = run(*xs, *case.fixed)
            results.append((out.data().copy(), [x.grad() for x in xs]))
        (eager_out, eager_grads), (fast_out, fast_grads) = results
        np.testing.assert_allclose(fast_out, eager_out, rtol=1e-10, atol=1e-12)
        for ge, gf in zip(eager_grads, fast_grads, strict=True):
            assert (ge is None) == (gf is None)
            if ge is not None:
                np.testing.assert_allclose(gf.data(), ge.data(), rtol=1e-10, atol=1e-12)


BATCH = 3


def _stacked(case: Case) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
    """``BATCH`` examples of the case's float inputs, and each input stacked along axis 0."""
    examples = [inputs(case, seed) for seed in range(BATCH)]
    return examples, [np.stack(column) for column in zip(*examples, strict=True)]


def _loop(fn: Callable, examples: list[list[Any]]) -> list[np.ndarray]:
    """``fn`` on each example, its outputs stacked."""
    outs = [fn(*[Tensor(a) for a in ex]) for ex in examples]
    outs = [o if isinstance(o, list | tuple) else [o] for o in outs]
    return [np.stack([o[k].data() for o in outs]) for k in range(len(outs[0]))]


def _close(got: Any, want: list[np.ndarray], rtol: float = 1e-10) -> None:
    got = got if isinstance(got, list | tuple) else [got]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape, (g.shape, w.shape)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        np.testing.assert_allclose(g.data(), w, rtol=rtol, atol=rtol)


def check_vmap(case: Case) -> None:
    """``vmap`` of the case equals a loop over ``BATCH`` examples: every float input batched
    along axis 0; the last one unbatched; the first batched along its last axis; the fixed
    numpy inputs (indices, masks) batched too; and, for differentiable cases, ``vmap(grad)``
    of a weighted sum equals a loop of per-example gradients."""
    fn, n = _bind(case), len(case.shapes)
    examples, stacked = _stacked(case)
    graph = ap.trace(fn, *[Tensor(a) for a in examples[0]])
    if any(node.op.draws for node in graph.nodes):
        # random draws: refused by default; with randomness="same" every example draws what
        # one call draws (the case makes its generator afresh on each call, as the loop does)
        with pytest.raises(ap.TransformError, match="randomness"):
            ap.func.vmap(fn)(*[Tensor(a) for a in stacked])
        same = ap.func.vmap(fn, randomness="same")
        _close(same(*[Tensor(a) for a in stacked]), _loop(fn, examples))
        return
    _close(ap.func.vmap(fn)(*[Tensor(a) for a in stacked]), _loop(fn, examples))
    if n > 1:
        shared = examples[0][-1]
        axes = (0,) * (n - 1) + (None,)
        got = ap.func.vmap(fn, in_axes=axes)(*[Tensor(a) for a in stacked[:-1]], Tensor(shared))
        _close(got, _loop(fn, [ex[:-1] + [shared] for ex in examples]))
    if n and np.ndim(examples[0][0]) > 0:
        moved = [np.moveaxis(stacked[0], 0, -1), *stacked[1:]]
        got = ap.func.vmap(fn, in_axes=(-1,) + (0,) * (n - 1))(*[Tensor(a) for a in moved])
        _close(got, _loop(fn, examples))
    traced, extra = traceable(case)
    if extra:
        batch_extra = [np.stack([e] * BATCH) for e in extra]
        got = ap.func.vmap(traced)(*[Tensor(a) for a in stacked], *batch_extra)
        _close(got, _loop(fn, examples))
    probe = fn(*[Tensor(a) for a in examples[0]])
    if case.grads and probe.dtype.kind == "f" and n:
        weights = Tensor(np.random.default_rng(7).uniform(0.5, 1.5, probe.shape))
        loss = ap.func.grad(lambda *xs: (fn(*xs) * weights).sum(), argnums=tuple(range(n)))
        got = ap.func.vmap(loss)(*[Tensor(a) for a in stacked])
        _close(list(got), _loop(loss, examples), rtol=1e-9)


def check_jvp(case: Case) -> None:
    """``jvp`` against a central difference in float64 along a random direction."""
    fn, n = _bind(case), len(case.shapes)
    if not case.grads or not n:
        return
    xs = inputs(case)
    rng = np.random.default_rng(11)
    ts = [rng.uniform(-1, 1, x.shape) for x in xs]
    out, tangent = ap.func.jvp(fn, [Tensor(x) for x in xs], [Tensor(t) for t in ts])
    if out.dtype.kind != "f":
        return
    eps = 1e-6
    plus = fn(*[Tensor(x + eps * t) for x, t in zip(xs, ts, strict=True)]).data()
    minus = fn(*[Tensor(x - eps * t) for x, t in zip(xs, ts, strict=True)]).data()
    np.testing.assert_allclose(tangent.data(), (plus - minus) / (2 * eps), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.data(), fn(*[Tensor(x) for x in xs]).data(), rtol=1e-12)


def all_cases() -> tuple[list[Case], set[str]]:
    """Every family's ``CASES`` and ``INDIRECT`` names, from ``tests/cases_*.py``."""
    cases: list[Case] = []
    indirect: set[str] = set()
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        module = importlib.import_module(path.stem)
        cases.extend(module.CASES)
        indirect.update(getattr(module, "INDIRECT", ()))
    return cases, indirect
