"""vmap of the shape ops in the configurations the op cases do not reach: batched index arrays
(alone or with batched data), advanced indices split by slices, None, Ellipsis or ints (numpy
moves their axes first), Python bools in an index, unbatched data or values beside batched
indices, and the rules nested and compiled. References are numpy loops over the examples."""

from __future__ import annotations

import numpy as np
import pytest

import aprender as ap
from aprender import Tensor
from aprender.func import grad, vmap

B = 3
RNG = np.random.default_rng(0)
X = RNG.standard_normal((B, 4, 5, 6))
I = RNG.integers(0, 4, (B, 2, 3))  # noqa: E741 - index arrays, as in numpy's docs
J = RNG.integers(-4, 4, (B, 3))

#: index expressions, each the same on numpy arrays and tensors
INDEXED = {
    "leading": lambda x, i, j: x[i],
    "after_a_slice": lambda x, i, j: x[:, i],
    "split_by_a_slice": lambda x, i, j: x[i, :, j],
    "int_split_by_a_slice": lambda x, i, j: x[0, :, j],
    "after_an_ellipsis": lambda x, i, j: x[..., j],
    "after_none": lambda x, i, j: x[None, i, j],
    "split_by_none": lambda x, i, j: x[i, None, j],
    "split_by_an_ellipsis": lambda x, i, j: x[i, ..., j],
    "with_an_int": lambda x, i, j: x[1:3, i, -1],
    "bool_split_by_a_slice": lambda x, i, j: x[True, :, i],
}

#: (x, i, j) batched or not
CONFIGS = {"all": (0, 0, 0), "indices": (None, 0, 0), "data": (0, None, None),
           "data_and_i": (0, 0, None)}


def _args(axes: tuple) -> list:
    return [a if ax is not None else a[0] for a, ax in zip((X, I, J), axes, strict=True)]


def _example(args: list, axes: tuple, b: int) -> list:
    return [a[b] if ax is not None else a for a, ax in zip(args, axes, strict=True)]


def _sources(fn, x: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The flat position in ``x`` that each element of ``fn(x, i, j)`` reads."""
    return fn(np.arange(x.size).reshape(x.shape), i, j)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", INDEXED)
def test_integer_array_index_pairs_each_example_with_its_indices(name: str, config: str) -> None:
    fn, axes = INDEXED[name], CONFIGS[config]
    args = _args(axes)
    want = np.stack([fn(*_example(args, axes, b)) for b in range(B)])
    got = vmap(fn, in_axes=axes)(Tensor(args[0]), *args[1:])
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.data(), want)

    # the gradient (unindex) scatters each example's weights to its own sources
    weights = np.random.default_rng(1).uniform(0.5, 1.5, want.shape[1:])
    per_example = grad(lambda x, i, j: (fn(x, i, j) * Tensor(weights)).sum())
    got = vmap(per_example, in_axes=axes)(Tensor(args[0]), *args[1:])
    want = np.zeros((B, X[0].size))
    for b in range(B):
        x, i, j = _example(args, axes, b)
        np.add.at(want[b], _sources(fn, x, i, j).ravel(), weights.ravel())
    np.testing.assert_allclose(got.data(), want.reshape(X.shape), rtol=1e-12)


BASIC = {
    "ellipsis_int": lambda x: x[..., 1],
    "none_negative_int": lambda x: x[None, :, -1],
    "strided": lambda x: x[1:3, None, ::2],
    "int": lambda x: x[0],
    "bool": lambda x: x[True],
    "int_and_bool_split": lambda x: x[0, :, True],
}


@pytest.mark.parametrize("name", BASIC)
def test_basic_index_and_its_gradient(name: str) -> None:
    fn = BASIC[name]
    want = np.stack([fn(x) for x in X])
    np.testing.assert_array_equal(vmap(fn)(Tensor(X)).data(), want)
    # batched along the last axis: the batch arrives as a strided view
    np.testing.assert_array_equal(vmap(fn, in_axes=-1)(Tensor(np.moveaxis(X, 0, -1))).data(),
                                  want)
    weights = np.random.default_rng(2).uniform(0.5, 1.5, want.shape[1:])
    got = vmap(grad(lambda x: (fn(x) * Tensor(weights)).sum()))(Tensor(X))
    expected = np.zeros((B, X[0].size))
    for b in range(B):
        np.add.at(expected[b], _sources(lambda x, i, j: fn(x), X[0], None, None).ravel(),
                  weights.ravel())
    np.testing.assert_allclose(got.data(), expected.reshape(X.shape), rtol=1e-12)


def test_gather_with_batched_index_and_shared_input() -> None:
    x = RNG.standard_normal((4, 5))
    index = RNG.integers(0, 4, (B, 3, 5))
    got = vmap(lambda t, i: t.gather(0, i), in_axes=(None, 0))(Tensor(x), index)
    want = np.stack([np.take_along_axis(x, i, axis=0) for i in index])
    np.testing.assert_array_equal(got.data(), want)
    # its gradient wrt the shared input scatters each example's index
    g = vmap(grad(lambda t, i: t.gather(0, i).sum()), in_axes=(None, 0))(Tensor(x), index)
    want = np.zeros((B, 4, 5))
    for b in range(B):
        np.add.at(want[b], (index[b], np.arange(5)), 1.0)
    np.testing.assert_array_equal(g.data(), want)


@pytest.mark.parametrize("axes", [(None, 0, None), (None, None, 0), (0, 0, None)])
def test_scatter_add_batched_in_any_input(axes: tuple) -> None:
    x = RNG.standard_normal((B, 3, 4))
    index = RNG.integers(0, 3, (B, 2, 4))
    src = RNG.standard_normal((B, 2, 4))
    args = [a if ax is not None else a[0] for a, ax in zip((x, index, src), axes, strict=True)]
    got = vmap(lambda t, i, s: t.scatter_add(0, i, s), in_axes=axes)(
        Tensor(args[0]), args[1], Tensor(args[2]))
    want = np.zeros((B, 3, 4))
    for b in range(B):
        t, i, s = (a[b] if ax is not None else a for a, ax in zip(args, axes, strict=True))
        want[b] = t
        np.add.at(want[b], (i, np.arange(4)), s)
    np.testing.assert_allclose(got.data(), want, rtol=1e-12)


def test_concat_and_stack_with_a_shared_input() -> None:
    x, shared = RNG.standard_normal((B, 2, 3)), RNG.standard_normal((2, 3))
    got = vmap(lambda a, s: ap.concat([a, s, a], dim=1), in_axes=(0, None))(Tensor(x),
                                                                             Tensor(shared))
    want = np.stack([np.concatenate([a, shared, a], axis=1) for a in x])
    np.testing.assert_array_equal(got.data(), want)
    got = vmap(lambda a, s: ap.stack([s, a], dim=-1), in_axes=(0, None))(Tensor(x),
                                                                          Tensor(shared))
    np.testing.assert_array_equal(got.data(), np.stack([np.stack([shared, a], -1) for a in x]))


def test_one_hot_roll_flat_repeat_and_broadcast_to() -> None:
    labels = RNG.integers(0, 4, (B, 5))
    np.testing.assert_array_equal(vmap(lambda t: t.one_hot(4))(Tensor(labels)).data(),
                                  np.eye(4, dtype=np.float32)[labels])
    x = RNG.standard_normal((3, 4, B))  # batched along the last axis: a strided batch
    flat = vmap(lambda t: t.roll(5), in_axes=2)(Tensor(x))
    np.testing.assert_array_equal(
        flat.data(), np.stack([np.roll(x[..., b].ravel(), 5).reshape(3, 4) for b in range(B)]))
    tiled = vmap(lambda t: t.repeat(2, 1, 3), in_axes=2)(Tensor(x))
    np.testing.assert_array_equal(tiled.data(),
                                  np.stack([np.tile(x[..., b], (2, 1, 3)) for b in range(B)]))
    wide = vmap(lambda t: t.broadcast_to((2, 3, 4)), in_axes=2)(Tensor(x))
    np.testing.assert_array_equal(
        wide.data(), np.stack([np.broadcast_to(x[..., b], (2, 3, 4)) for b in range(B)]))


def test_nested_vmap_of_batched_indices() -> None:
    x = RNG.standard_normal((2, B, 4, 5))
    index = RNG.integers(0, 5, (2, B, 3))
    got = vmap(vmap(lambda t, i: t[:, i]))(Tensor(x), index)
    want = np.stack([np.stack([x[a, b][:, index[a, b]] for b in range(B)]) for a in range(2)])
    np.testing.assert_array_equal(got.data(), want)


def test_compiled_vmap_of_batched_indices_reads_new_indices() -> None:
    fast = ap.compile(lambda t, i: vmap(lambda a, k: a[k, :, k])(t, i))
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        x, index = rng.standard_normal((B, 4, 5, 4)), rng.integers(0, 4, (B, 2))
        want = np.stack([x[b][index[b], :, index[b]] for b in range(B)])
        np.testing.assert_array_equal(fast(Tensor(x), index).data(), want)
