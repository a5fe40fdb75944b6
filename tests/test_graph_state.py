"""Grad mode, the per-thread tape, clear_graph, memory, threads and gradient accumulation."""

from __future__ import annotations

import gc
import threading
import tracemalloc

import numpy as np
import pytest

import aprender as ap
from aprender.autograd import Tensor, clear_graph, is_grad_enabled, no_grad


def test_no_grad_as_function_and_context_nested_and_raising() -> None:
    x = Tensor([1.0, 2.0]).requires_grad()
    assert no_grad(lambda: (x * 2).requires_grad_enabled()) is False
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        with no_grad():
            assert not is_grad_enabled()
            with ap.enable_grad():
                assert is_grad_enabled()
                assert (x * 2).requires_grad_enabled()
            assert not is_grad_enabled()
        assert not is_grad_enabled()
    assert is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            raise ZeroDivisionError
    assert is_grad_enabled()

    def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        no_grad(boom)
    assert is_grad_enabled()


def test_gradients_accumulate_across_backward_calls() -> None:
    x = Tensor([1.0, 2.0]).requires_grad()
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    assert x.grad().tolist() == [5.0, 7.0]
    ap.clear_grad(x.id())
    assert x.grad() is None
    x.sum().backward()
    assert x.grad().tolist() == [1.0, 1.0]


def test_shared_subexpression_and_same_tensor_twice() -> None:
    x = Tensor([3.0]).requires_grad()
    y = x * x  # the same tensor twice
    z = y + y  # a shared intermediate
    z.backward()
    assert x.grad().tolist() == [12.0]


def test_leaf_gradients_are_private_writable_arrays() -> None:
    a, b = Tensor([1.0, 2.0]).requires_grad(), Tensor([3.0, 4.0]).requires_grad()
    (a + b).sum().backward()  # both receive the same upstream gradient
    with no_grad():
        a.grad().mul_(10.0)
    assert b.grad().tolist() == [1.0, 1.0]
    assert a.grad().tolist() == [10.0, 10.0]


def test_backward_with_explicit_grad_and_one_element_non_scalar() -> None:
    x = Tensor([1.0, 2.0, 3.0]).requires_grad()
    (x * 2).backward(np.array([1.0, 0.0, 2.0]))
    assert x.grad().tolist() == [2.0, 0.0, 4.0]
    y = Tensor([[2.0]]).requires_grad()
    (y * y).backward()  # one element, any shape: seeded with 1
    assert y.grad().tolist() == [[4.0]]
    z = Tensor([1.0, 1.0]).requires_grad()
    (z * 5).backward_with_grad(Tensor([1.0, 1.0]))
    assert z.grad().tolist() == [5.0, 5.0]


def test_create_graph_gives_second_derivatives() -> None:
    x = Tensor([2.0, 3.0]).requires_grad()
    y = (x ** 3).sum()
    y.backward(create_graph=True)
    g = x.grad()
    assert g.tolist() == [12.0, 27.0]  # 3 x^2
    assert g.requires_grad_enabled()
    ap.clear_grad(x.id())
    g.sum().backward()
    assert x.grad().tolist() == [12.0, 18.0]  # 6 x


def test_functional_grad_leaves_grad_untouched_and_reaches_intermediates() -> None:
    x = Tensor([1.0, 2.0]).requires_grad()
    h = x * 3
    y = (h * h).sum()
    gx, gh = ap.grad(y, [x, h])
    assert gx.tolist() == [18.0, 36.0] and gh.tolist() == [6.0, 12.0]
    assert x.grad() is None
    unrelated = Tensor([1.0]).requires_grad()
    assert ap.grad(y, [unrelated]) == [None]


def test_grad_on_non_leaf_is_none_and_leaf_flags() -> None:
    x = Tensor([1.0]).requires_grad()
    y = x * 2
    y.backward()
    assert y.grad() is None and not y.is_leaf() and x.is_leaf()
    assert y.requires_grad_enabled() and x.requires_grad_enabled()
    assert not Tensor([1.0]).requires_grad_enabled()
    d = y.detach()
    assert d.is_leaf() and not d.requires_grad_enabled() and d.tolist() == [2.0]


def test_clear_graph_keeps_values_and_grads_and_blocks_backward() -> None:
    x = Tensor([1.0, 2.0]).requires_grad()
    loss = (x * x).sum()
    loss.backward()
    clear_graph()
    assert loss.item() == 5.0 and x.grad().tolist() == [2.0, 4.0]
    with pytest.raises(ap.GraphError, match="clear_graph"):
        loss.backward()
    assert x.grad().tolist() == [2.0, 4.0]
    (x * x).sum().backward()  # a new forward pass works
    assert x.grad().tolist() == [4.0, 8.0]


def _train_linear(seed: int, barrier: threading.Barrier | None = None) -> list[float]:
    rng = np.random.default_rng(seed)
    w = Tensor(rng.standard_normal(3)).requires_grad()
    x = Tensor(rng.standard_normal((20, 3)))
    y = Tensor(x.data() @ np.array([1.0, -2.0, 0.5]))
    if barrier is not None:
        barrier.wait()
    for step in range(300):
        loss = ((x @ w) - y).pow(2.0).mean()
        loss.backward()
        with no_grad():
            w.sub_(w.grad() * 0.1)
        ap.clear_grad(w.id())
        if step % 7 == 0:
            clear_graph()  # clears only this thread's graph
    return w.tolist()


def test_two_threads_training_at_once_do_not_interfere() -> None:
    expected = {s: _train_linear(s) for s in (1, 2)}
    np.testing.assert_allclose(expected[1], [1.0, -2.0, 0.5], atol=1e-3)
    results: dict[int, list[float]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def train(seed: int) -> None:
        try:
            results[seed] = _train_linear(seed, barrier)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def toggle_grad_mode() -> None:
        barrier.wait()
        for _ in range(2000):
            with no_grad():
                clear_graph()

    threads = [threading.Thread(target=train, args=(s,)) for s in (1, 2)]
    threads.append(threading.Thread(target=toggle_grad_mode))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == expected


def test_grad_mode_is_thread_local() -> None:
    seen = []
    with no_grad():
        t = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def _eager_step(w1: Tensor, w2: Tensor, x: Tensor, y: Tensor) -> float:
    loss = ((x @ w1).relu() @ w2 - y).pow(2.0).mean()
    loss.backward()
    with no_grad():
        w1.sub_(w1.grad() * 0.01)
        w2.sub_(w2.grad() * 0.01)
    ap.clear_grad(w1.id())
    ap.clear_grad(w2.id())
    return loss.item()


def test_ten_thousand_steps_without_clear_graph_do_not_grow_memory() -> None:
    rng = np.random.default_rng(0)
    w1 = Tensor(rng.standard_normal((8, 16)).astype(np.float32) * 0.1).requires_grad()
    w2 = Tensor(rng.standard_normal((16, 1)).astype(np.float32) * 0.1).requires_grad()
    x = Tensor(rng.standard_normal((4, 8)).astype(np.float32))
    y = Tensor(rng.standard_normal((4, 1)).astype(np.float32))
    for _ in range(200):  # warm-up: caches, compacted tape
        _eager_step(w1, w2, x, y)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(5000):
            _eager_step(w1, w2, x, y)
        gc.collect()
        middle, _ = tracemalloc.get_traced_memory()
        for _ in range(5000):
            _eager_step(w1, w2, x, y)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A kept graph costs kilobytes per step (nodes, arrays); the bounded tape index of weak
    # references moves by at most ~60 KB. So 5000 steps may not add more than 20 bytes each.
    assert end - middle < 100_000, f"grew by {end - middle} bytes over 5000 steps"


def test_unreachable_graph_is_freed_by_refcount_alone() -> None:
    import weakref

    x = Tensor(np.ones(1000)).requires_grad()
    gc.disable()
    try:
        h = x * 2
        node_ref = weakref.ref(h._node)
        loss = (h * h).sum()
        del h, loss
        assert node_ref() is None
    finally:
        gc.enable()
