"""The gradient steal in ``engine._accumulate_into``: a new gradient may take over the
VJP's array only when nothing else can see it. ``steal=False`` runs the same program with the
copying behaviour (``_UNSHARED = None``) as the reference."""

from __future__ import annotations

import numpy as np
import pytest

from aprender.autograd import Tensor
from aprender.runtime import engine

C = np.array([1.0, 2.0, 3.0])


@pytest.fixture(params=[True, False], ids=["steal", "copy"])
def steal(request, monkeypatch) -> bool:
    if not request.param:
        monkeypatch.setattr(engine, "_UNSHARED", None)
    return request.param


def _one_shot(leaf: Tensor, kept: list) -> None:
    """A hook that keeps the gradient it is given and removes itself (runs once)."""
    def hook(_: Tensor, grad: Tensor) -> None:
        kept.append(grad)
        handle.remove()

    handle = engine.register_grad_ready_hook(leaf, hook)


def test_one_shot_hook_keeps_the_gradient_of_its_backward_alone(steal) -> None:
    # the registry is empty again when backward() accumulates, so the hooked leaf's gradient
    # takes over the very tensor the hook kept; the next backward adds into it in place
    a = Tensor(np.zeros(3)).requires_grad()
    kept: list[Tensor] = []
    _one_shot(a, kept)
    (a * Tensor(C)).sum().backward()
    (a * Tensor(C)).sum().backward()
    np.testing.assert_array_equal(a.grad().data(), 2 * C)
    np.testing.assert_array_equal(kept[0].data(), C)  # d/da sum(a*c) of the first backward
    assert not np.shares_memory(kept[0].data(), a.grad().data())


def test_one_shot_hook_argument_is_not_another_leafs_gradient(steal) -> None:
    # add's VJP gives a and b one tensor: a (never hooked) takes it over while the hook of b
    # holds it, so the hook scaling its own argument (deferred to the end of backward, after
    # the gradients are written) changes a's gradient
    a = Tensor(np.zeros(3)).requires_grad()
    b = Tensor(np.zeros(3)).requires_grad()

    def hook(_: Tensor, grad: Tensor) -> None:
        engine.queue_callback(lambda: grad.mul_(0.5))
        handle.remove()

    handle = engine.register_grad_ready_hook(b, hook)
    ((a + b) * Tensor(C)).sum().backward()
    np.testing.assert_array_equal(a.grad().data(), C)
    np.testing.assert_array_equal(b.grad().data(), C)
