"""Adversarial tests of aprender.func: programs where a transform is expected to give what
JAX / torch.func (or the eager program) gives, checked against independent references."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor, no_grad
from aprender.func import grad, hessian, jacfwd, jacrev, jvp, vmap


def test_vmap_over_an_empty_batch_gives_an_empty_result_or_a_transform_error() -> None:
    """jax.vmap(lambda x: x * 2)(zeros((0, 3))) gives a [0, 3] array (a loop over no examples
    is empty). aprender raises a bare numpy IndexError ("cannot do a non-empty take from an
    empty axes") from taking the first example to trace with."""
    try:
        out = vmap(lambda x: x * 2.0)(Tensor(np.zeros((0, 3))))
    except ap.TransformError:
        return
    assert out.shape == (0, 3)


def _counting(counter: Tensor):
    def f(x: Tensor) -> Tensor:
        with no_grad():
            counter.add_(1.0)
        return x * counter
    return f


def test_jacfwd_of_a_function_with_a_shared_in_place_update_runs_it_once() -> None:
    """f increments an outside counter (under no_grad) and returns x * counter. The eager
    program f(x) leaves the counter at 1, and its Jacobian is 1 * I (torch.func.jacfwd and
    jacrev call f once). aprender's jacrev agrees; jacfwd runs f twice (once for the output,
    once inside vmap over the basis tangents), so the counter ends at 2 and the Jacobian is
    2 * I: a silently wrong number."""
    counter = Tensor(np.zeros(()))
    x = Tensor(np.array([1.0, 2.0]))
    np.testing.assert_allclose(jacrev(_counting(Tensor(np.zeros(()))))(x).data(), np.eye(2))
    got = jacfwd(_counting(counter))(x)
    assert counter.item() == 1.0
    np.testing.assert_allclose(got.data(), np.eye(2))


def test_hessian_through_batch_norm_in_training_updates_running_stats_once() -> None:
    """A loss through BatchNorm1d in training mode moves running_mean once by momentum * batch
    mean and counts one batch, as the eager forward (and grad/jacrev) do. aprender's hessian
    (jacfwd of jacrev) runs the forward twice: num_batches_tracked is 2 and running_mean has
    moved twice."""
    xb = np.random.default_rng(0).standard_normal((6, 2))
    bn = nn.BatchNorm1d(2, dtype=np.float64)
    bn.train()
    w = np.array([1.0, 2.0])
    hessian(lambda w: (bn(Tensor(xb) * w) ** 3.0).sum())(Tensor(w))
    assert int(bn.num_batches_tracked.item()) == 1
    np.testing.assert_allclose(bn.running_mean.data(), 0.1 * (xb * w).mean(axis=0), rtol=1e-12)


def test_jvp_pairs_dict_tangents_with_primals_by_key() -> None:
    """f({"a": a, "b": b}) = 2a + 3b, tangents given as {"b": tb, "a": ta} (same keys, another
    insertion order). JAX pairs dict leaves by key (sorted keys): the output tangent is
    2 ta + 3 tb = [2, 30]; torch.func.jvp refuses the mismatched structure. aprender pairs the
    leaves by position (jvp never compares the tangents' structure with the primals') and
    silently returns 2 tb + 3 ta = [3, 20]."""
    x, y = Tensor(np.array([1.0, 2.0])), Tensor(np.array([3.0, 4.0]))
    ta, tb = np.array([1.0, 0.0]), np.array([0.0, 10.0])
    f = lambda d: d["a"] * 2.0 + d["b"] * 3.0  # noqa: E731
    try:
        _, out = jvp(f, ({"a": x, "b": y},), ({"b": Tensor(tb), "a": Tensor(ta)},))
    except ap.TransformError:
        return
    np.testing.assert_allclose(out.data(), 2 * ta + 3 * tb)


@pytest.mark.parametrize("transform", [grad, jacrev, jacfwd])
def test_repeated_argnums_are_refused_or_differentiate_both_times(transform) -> None:
    """argnums=(0, 0) names argument 0 twice. torch.func refuses ("argnums elements must be
    unique"); if allowed, both entries are d(sum x^2)/dx = 2x (or its Jacobian). aprender makes
    two aliases of argument 0, calls the function with the second, and returns a silent zero
    for the first entry: ([0, 0], [2, 4])."""
    x = Tensor(np.array([1.0, 2.0]))
    f = (lambda x: (x * x).sum()) if transform is grad else (lambda x: x * x)
    want = 2 * x.data() if transform is grad else np.diag(2 * x.data())
    try:
        first, second = transform(f, argnums=(0, 0))(x)
    except ap.TransformError:
        return
    np.testing.assert_allclose(first.data(), want)
    np.testing.assert_allclose(second.data(), want)


def _new(x: Tensor) -> Tensor:
    return Tensor.new(x, x.shape)


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, _new])
def test_vmap_of_a_function_that_copies_its_example(clone) -> None:
    """copy.copy / copy.deepcopy / Tensor.new(x, shape) of the example inside the vmapped
    function: a loop over the examples gives [[2, 4], [6, 8]]. None of these is recorded (nor
    refused as a value read, as np.asarray(x) is), so the copy becomes a captured input holding
    the FIRST example's values and every row is [2, 4]: silently wrong. (ap.compile has the same
    hole: ap.compile(lambda x: Tensor.new(x, (2,)) * 2.0) returns the first call's values on
    later calls.)"""
    xs = np.array([[1.0, 2.0], [3.0, 4.0]])
    got = vmap(lambda x: clone(x) * 2.0)(Tensor(xs))
    np.testing.assert_allclose(got.data(), 2 * xs)


def test_jacfwd_of_a_function_with_an_integer_output_matches_jacrev_or_says_why() -> None:
    """f(x) = (x * x, argmax(x)): jacrev gives (diag(2x), zeros[3]) (the integer output has
    no derivative); JAX's jacfwd gives a float0/zero block for it. aprender's jacfwd (and jvp)
    fail inside the transform with DTypeError "requires_grad: gradients need a float dtype,
    got int64[]", naming a call the user never made (jvp seeds every output with
    zeros(...).requires_grad())."""
    x = Tensor(np.array([1.0, 3.0, 2.0]))

    def f(v: Tensor) -> tuple:
        return v * v, v.argmax()
    sq, arg = jacrev(f)(x)
    np.testing.assert_allclose(sq.data(), np.diag(2 * x.data()))
    np.testing.assert_allclose(arg.data(), np.zeros(3))
    try:
        sq, arg = jacfwd(f)(x)
    except ap.TransformError:
        return
    np.testing.assert_allclose(sq.data(), np.diag(2 * x.data()))
    np.testing.assert_allclose(arg.data(), np.zeros(3))


def test_jacobians_with_an_empty_input_or_output_have_a_zero_sized_axis() -> None:
    """JAX gives Jacobians of shape out.shape + in.shape also when one side is empty. aprender:
    jacrev of an empty output raises ShapeError from an internal reshape ("cannot view [1, 3]
    as [0, 3]": a size-0 output takes the one-element path, `o.size > 1`), and jacfwd/hessian
    w.r.t. an empty input raise a bare IndexError (a vmap over the 0 basis tangents)."""
    ones, empty = Tensor(np.ones(3)), Tensor(np.zeros((0,)))
    assert jacrev(lambda v: v[:0])(ones).shape == (0, 3)
    assert jacfwd(lambda v: v[:0])(ones).shape == (0, 3)  # holds today
    assert jacrev(lambda v: v.sum() * Tensor(np.ones(2)))(empty).shape == (2, 0)  # holds today
    assert jacfwd(lambda v: v.sum() * Tensor(np.ones(2)))(empty).shape == (2, 0)
    assert hessian(lambda v: (v * v).sum())(empty).shape == (0, 0)
