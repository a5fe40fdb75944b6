"""aprender.func: every transform against finite differences (float64) or a loop of eager
backward passes, nested, on pytrees, with has_aux, compiled, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor, no_grad
from aprender.func import (
    functional_call,
    grad,
    hessian,
    jacfwd,
    jacrev,
    jvp,
    value_and_grad,
    vjp,
    vmap,
)
from aprender.ir.registry import OpDef

RNG = np.random.default_rng(0)


def fd_jacobian(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of ``f`` (numpy in, numpy out) at ``x``: ``out.shape + x.shape``."""
    out = np.asarray(f(x))
    jac = np.zeros(out.shape + x.shape)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        jac[(...,) + i] = (np.asarray(f(x + d)) - np.asarray(f(x - d))) / (2 * eps)
    return jac


def wavy(x: Tensor, w: Tensor) -> Tensor:
    """A scalar function of two arguments with cross terms."""
    return ((x @ w).tanh() * x.sum()).sum() + (w * w).mean()


def wavy_np(x: np.ndarray, w: np.ndarray) -> float:
    return float((np.tanh(x @ w) * x.sum()).sum() + (w * w).mean())


X = RNG.standard_normal((3,))
W = RNG.standard_normal((3, 2))


# --- grad ------------------------------------------------------------------------------------

def test_grad_matches_finite_differences_for_each_argnum() -> None:
    gx, gw = grad(wavy, argnums=(0, 1))(Tensor(X), Tensor(W))
    np.testing.assert_allclose(gx.data(), fd_jacobian(lambda x: wavy_np(x, W), X), rtol=1e-6)
    np.testing.assert_allclose(gw.data(), fd_jacobian(lambda w: wavy_np(X, w), W), rtol=1e-6)
    only_w = grad(wavy, argnums=1)(Tensor(X), Tensor(W))
    np.testing.assert_allclose(only_w.data(), gw.data(), rtol=1e-12)


def test_grad_takes_pytrees_arrays_and_floats() -> None:
    def f(params: dict, scale: float) -> Tensor:
        return (params["a"] * params["b"][0]).sum() * scale + params["b"][1].exp().sum()

    a, b0, b1 = RNG.standard_normal(4), RNG.standard_normal(4), RNG.standard_normal(2)
    params = {"a": a, "b": [Tensor(b0), Tensor(b1)]}
    g = grad(f)(params, 3.0)
    assert set(g) == {"a", "b"} and isinstance(g["b"], list)
    np.testing.assert_allclose(g["a"].data(), 3.0 * b0, rtol=1e-12)
    np.testing.assert_allclose(g["b"][0].data(), 3.0 * a, rtol=1e-12)
    np.testing.assert_allclose(g["b"][1].data(), np.exp(b1), rtol=1e-12)
    gs = grad(f, argnums=1)(params, 3.0)
    np.testing.assert_allclose(gs.data(), (a * b0).sum(), rtol=1e-6)  # a float is float32


def test_value_and_grad_and_has_aux() -> None:
    def f(x: Tensor) -> tuple:
        y = (x * x).sum()
        return y, {"double": y * 2.0}

    x = Tensor(np.array([1.0, 2.0]))
    (value, aux), g = value_and_grad(f, has_aux=True)(x)
    assert value.item() == 5.0 and aux["double"].item() == 10.0
    np.testing.assert_allclose(g.data(), [2.0, 4.0])
    g2, aux2 = grad(f, has_aux=True)(x)
    np.testing.assert_allclose(g2.data(), [2.0, 4.0])
    assert aux2["double"].item() == 10.0


def test_grad_of_an_unused_argument_is_zeros_and_nothing_is_left_on_the_inputs() -> None:
    x = Tensor(np.array([1.0, 2.0])).requires_grad()
    g0, g1 = grad(lambda a, b: (a * 3.0).sum(), argnums=(0, 1))(x, Tensor(np.ones(3)))
    np.testing.assert_allclose(g0.data(), [3.0, 3.0])
    np.testing.assert_allclose(g1.data(), np.zeros(3))
    assert x.grad() is None


def test_nested_grad_gives_higher_derivatives() -> None:
    f = lambda x: (x ** 4.0).sum()  # noqa: E731
    x = Tensor(np.array([0.5, -1.5]))
    np.testing.assert_allclose(grad(lambda x: grad(f)(x).sum())(x).data(),
                               12 * x.data() ** 2, rtol=1e-12)
    third = grad(lambda x: grad(lambda x: grad(f)(x).sum())(x).sum())(x)
    np.testing.assert_allclose(third.data(), 24 * x.data(), rtol=1e-12)


def test_grad_inside_a_function_closing_over_the_outer_argument() -> None:
    # d/dx [ d/dy (x * y^2) at y = x ] = d/dx (2 x y)|y=x ... with y held apart: 2 x * y
    def inner(x: Tensor) -> Tensor:
        return grad(lambda y: (x * y * y).sum())(x).sum()
    x = Tensor(np.array([1.5]))
    # inner(x) = 2 x^2 (the inner derivative is 2 x y at y = x), so the outer one is 4 x
    np.testing.assert_allclose(grad(inner)(x).data(), [6.0])


def test_grad_result_is_differentiable_for_outer_backward() -> None:
    w = Tensor(np.array([0.3, -0.2])).requires_grad()
    x = Tensor(np.array([1.0, 2.0]))
    penalty = (grad(lambda x: ((x * w).tanh()).sum())(x) ** 2.0).sum()
    penalty.backward()

    def penalty_np(wv: np.ndarray) -> float:
        return float(((wv * (1 - np.tanh(x.data() * wv) ** 2)) ** 2).sum())
    np.testing.assert_allclose(w.grad().data(), fd_jacobian(penalty_np, w.data()), rtol=1e-6)


def test_grad_errors_are_clear() -> None:
    x = Tensor(np.ones(3))
    with pytest.raises(ap.TransformError, match="one-element floating tensor"):
        grad(lambda x: x * 2.0)(x)
    with pytest.raises(ap.TransformError, match="out of range"):
        grad(lambda x: x.sum(), argnums=2)(x)
    with pytest.raises(ap.TransformError, match="only floating"):
        grad(lambda x: x.sum())(Tensor(np.arange(3)))
    with pytest.raises(ap.TransformError, match=r"\(output, aux\)"):
        grad(lambda x: x.sum(), has_aux=True)(x)


# --- vjp, jvp ---------------------------------------------------------------------------------

def two_outputs(x: Tensor, w: Tensor) -> tuple:
    h = (x @ w).sin()
    return h, (h * h).sum() + x.exp().sum()


def test_vjp_equals_eager_backward_and_can_be_called_again() -> None:
    cts = (RNG.standard_normal(2), np.array(0.7))
    out, fn = vjp(two_outputs, Tensor(X), Tensor(W))
    for _ in range(2):
        gx, gw = fn((Tensor(cts[0]), Tensor(cts[1])))
        x, w = Tensor(X).requires_grad(), Tensor(W).requires_grad()
        h, s = two_outputs(x, w)
        ((h * Tensor(cts[0])).sum() + s * float(cts[1])).backward()
        np.testing.assert_allclose(gx.data(), x.grad().data(), rtol=1e-12)
        np.testing.assert_allclose(gw.data(), w.grad().data(), rtol=1e-12)
    np.testing.assert_allclose(out[0].data(), np.sin(X @ W), rtol=1e-12)
    with pytest.raises(ap.TransformError, match="does not match"):
        fn((Tensor(np.ones(3)), Tensor(np.array(1.0))))
    with pytest.raises(ap.TransformError, match="structure"):
        fn(Tensor(np.ones(2)))


def test_jvp_matches_directional_differences_on_pytrees() -> None:
    tx, tw = RNG.standard_normal(3), RNG.standard_normal((3, 2))
    (h, s), (th, ts) = jvp(two_outputs, (Tensor(X), Tensor(W)), (Tensor(tx), Tensor(tw)))
    eps = 1e-6

    def at(step: float) -> tuple:
        h, s = two_outputs(Tensor(X + step * tx), Tensor(W + step * tw))
        return h.data(), s.data()
    (hp, sp), (hm, sm) = at(eps), at(-eps)
    np.testing.assert_allclose(th.data(), (hp - hm) / (2 * eps), rtol=1e-6)
    np.testing.assert_allclose(ts.data(), (sp - sm) / (2 * eps), rtol=1e-6)
    with pytest.raises(ap.TransformError, match="one tangent per primal"):
        jvp(two_outputs, (Tensor(X), Tensor(W)), (Tensor(tx),))
    with pytest.raises(ap.TransformError, match="does not match"):
        jvp(two_outputs, (Tensor(X), Tensor(W)), (Tensor(tw), Tensor(tw)))


# --- Jacobians and Hessians -------------------------------------------------------------------

def vec(x: Tensor) -> Tensor:
    return (x.reshape((3, 1)) * x.reshape((1, 3))).sin().sum(axis=0) * x.exp()


def vec_np(x: np.ndarray) -> np.ndarray:
    return np.sin(np.outer(x, x)).sum(axis=0) * np.exp(x)


@pytest.mark.parametrize("jac", [jacrev, jacfwd])
def test_jacobians_match_finite_differences(jac) -> None:
    got = jac(vec)(Tensor(X))
    np.testing.assert_allclose(got.data(), fd_jacobian(vec_np, X), rtol=1e-6, atol=1e-9)
    jx, jw = jac(lambda x, w: (x @ w).tanh(), argnums=(0, 1))(Tensor(X), Tensor(W))
    assert jx.shape == (2, 3) and jw.shape == (2, 3, 2)
    np.testing.assert_allclose(jx.data(), fd_jacobian(lambda x: np.tanh(x @ W), X), rtol=1e-6)
    np.testing.assert_allclose(jw.data(), fd_jacobian(lambda w: np.tanh(X @ w), W), rtol=1e-6)


def test_jacobians_of_several_outputs_nest_as_outputs_then_arguments() -> None:
    for jac in (jacrev, jacfwd):
        (jh_x, jh_w), (js_x, js_w) = jac(two_outputs, argnums=(0, 1))(Tensor(X), Tensor(W))
        assert jh_x.shape == (2, 3) and jh_w.shape == (2, 3, 2)
        assert js_x.shape == (3,) and js_w.shape == (3, 2)
        np.testing.assert_allclose(
            js_w.data(), fd_jacobian(lambda w: two_outputs(Tensor(X), Tensor(w))[1].data(), W),
            rtol=1e-6)


def test_hessian_matches_finite_differences_of_the_gradient() -> None:
    def f(x: Tensor) -> Tensor:
        return (x.sin() * x.sum()).sum() + (x ** 3.0).sum()

    def grad_np(x: np.ndarray) -> np.ndarray:
        return np.cos(x) * x.sum() + np.sin(x).sum() + 3 * x ** 2
    h = hessian(f)(Tensor(X))
    np.testing.assert_allclose(h.data(), fd_jacobian(grad_np, X), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(h.data(), h.data().T, rtol=1e-12)


# --- vmap -------------------------------------------------------------------------------------

def test_vmap_in_axes_out_axes_and_nested_structures() -> None:
    xs = RNG.standard_normal((4, 3))
    w = RNG.standard_normal((3, 2))

    def f(d: dict, scale: Tensor) -> tuple:
        return (d["x"] @ d["w"]) * scale, d["x"].sum()

    out, total = vmap(f, in_axes=({"x": 1, "w": None}, None), out_axes=(1, 0))(
        {"x": Tensor(xs.T), "w": Tensor(w)}, Tensor(np.array(2.0)))
    np.testing.assert_allclose(out.data(), (xs @ w * 2.0).T, rtol=1e-12)
    np.testing.assert_allclose(total.data(), xs.sum(axis=1), rtol=1e-12)
    # an output that does not depend on the batch is broadcast, or kept with out_axes=None
    same, per = vmap(lambda x, c: (c * 1.0, x * c), in_axes=(0, None), out_axes=(None, 0))(
        Tensor(xs), Tensor(np.array(3.0)))
    assert same.shape == () and per.shape == (4, 3)
    broadcast = vmap(lambda x, c: c * 1.0, in_axes=(0, None))(Tensor(xs), Tensor(np.ones(2)))
    assert broadcast.shape == (4, 2)


def test_vmap_of_vmap_equals_a_double_loop() -> None:
    xs = RNG.standard_normal((2, 3, 4))

    def f(row: Tensor) -> Tensor:
        return row.softmax() * row.max()
    got = vmap(vmap(f))(Tensor(xs))
    want = np.stack([np.stack([f(Tensor(r)).data() for r in plane]) for plane in xs])
    np.testing.assert_allclose(got.data(), want, rtol=1e-12)
    got_inner = vmap(vmap(f, in_axes=1), in_axes=0)(Tensor(xs.transpose(0, 2, 1)))
    np.testing.assert_allclose(got_inner.data(), want, rtol=1e-12)


def test_vmap_of_jacrev_and_jacfwd_of_vmap() -> None:
    xs = RNG.standard_normal((5, 3))
    got = vmap(jacrev(vec))(Tensor(xs))
    want = np.stack([fd_jacobian(vec_np, x) for x in xs])
    np.testing.assert_allclose(got.data(), want, rtol=1e-6, atol=1e-9)
    batched_jac = jacfwd(vmap(vec))(Tensor(xs))  # block-diagonal over the batch
    assert batched_jac.shape == (5, 3, 5, 3)
    for i in range(5):
        np.testing.assert_allclose(batched_jac.data()[i, :, i], want[i], rtol=1e-6, atol=1e-9)
        off = np.delete(batched_jac.data()[i], i, axis=1)
        assert np.all(off == 0)


def test_vmap_result_backpropagates_into_captured_parameters_like_a_loop() -> None:
    xs = RNG.standard_normal((4, 3))
    w = Tensor(W.copy()).requires_grad()
    vmap(lambda x: (x @ w).tanh().sum())(Tensor(xs)).sum().backward()
    w2 = Tensor(W.copy()).requires_grad()
    sum((Tensor(x) @ w2).tanh().sum() for x in xs).backward()
    np.testing.assert_allclose(w.grad().data(), w2.grad().data(), rtol=1e-12)


def test_vmap_keeps_no_grad_and_detach_inside_the_function() -> None:
    xs = RNG.standard_normal((4, 3))
    w = Tensor(W.copy()).requires_grad()

    def f(x: Tensor) -> Tensor:
        with no_grad():
            frozen = (x @ w).exp()
        return ((x @ w) * frozen + (x @ w).detach()).sum()
    vmap(f)(Tensor(xs)).sum().backward()
    want = sum((np.exp(x @ W)[None, :] * x[:, None]) for x in xs)
    np.testing.assert_allclose(w.grad().data(), want, rtol=1e-12)


def test_vmap_errors_are_clear() -> None:
    xs = Tensor(np.ones((4, 3)))
    with pytest.raises(ap.TransformError, match="different batch sizes"):
        vmap(lambda a, b: a + b)(xs, Tensor(np.ones((5, 3))))
    with pytest.raises(ap.TransformError, match="no argument .* is batched"):
        vmap(lambda a: a, in_axes=None)(xs)
    with pytest.raises(ap.TransformError, match="out of range"):
        vmap(lambda a: a, in_axes=2)(xs)
    with pytest.raises(ap.TransformError, match="only tensors and arrays"):
        vmap(lambda a, s: a * s)(xs, 2.0)
    with pytest.raises(ap.TransformError, match="one entry per positional"):
        vmap(lambda a, b: a, in_axes=(0,))(xs, xs)
    with pytest.raises(ap.TransformError, match="reading a tensor's value inside vmap"):
        vmap(lambda a: a * 2.0 if a.sum().item() > 0 else a)(xs)
    with pytest.raises(ap.TransformError, match="backward"):
        vmap(lambda a: a.requires_grad().sum().backward())(xs)
    with pytest.raises(ap.TransformError, match="randomness"):
        vmap(lambda a: a, randomness="sometimes")
    with pytest.raises(ap.TransformError, match="out_axes is None"):
        vmap(lambda a: a * 2.0, out_axes=None)(xs)

    twice = OpDef(name="twice_unbatchable", kind="elementwise", impl=lambda a: a * 2,
                  infer=lambda a: (tuple(a.shape), a.dtype))
    with pytest.raises(ap.TransformError, match="op twice_unbatchable has no batching rule"):
        vmap(lambda a: a._apply(twice, (a,), {}))(xs)


def test_vmap_applies_a_shared_in_place_update_once_and_refuses_a_per_example_one() -> None:
    counter = Tensor(np.zeros(()))

    def f(x: Tensor) -> Tensor:
        with no_grad():
            counter.add_(1.0)
        return x * 2.0
    vmap(f)(Tensor(np.ones((4, 2))))
    assert counter.item() == 1.0  # the function ran once, as a batched computation
    stats = Tensor(np.zeros(2))

    def g(x: Tensor) -> Tensor:
        with no_grad():
            stats.assign(x)
        return x
    with pytest.raises(ap.TransformError, match="depends on the example"):
        vmap(g)(Tensor(np.ones((4, 2))))
    np.testing.assert_array_equal(stats.data(), np.zeros(2))


# --- functional_call and per-example gradients ------------------------------------------------

def mlp_loss(model: nn.Module, params: dict, x: Tensor, y: np.ndarray) -> Tensor:
    logits = functional_call(model, params, (x.reshape((1, -1)),))
    return nn.cross_entropy(logits, y.reshape((1,)))


def test_per_example_gradients_of_a_model_equal_a_loop_and_compile() -> None:
    model = nn.MLP(6, 8, 3, rng=0)
    params = {k: v.detach() for k, v in model.named_parameters()}
    xs = RNG.standard_normal((5, 6)).astype(np.float32)
    ys = RNG.integers(0, 3, 5)

    def per_example(params: dict, xs: Tensor, ys: Tensor) -> dict:
        loss = lambda p, x, y: mlp_loss(model, p, x, y)  # noqa: E731
        return vmap(grad(loss), in_axes=(None, 0, 0))(params, xs, ys)

    got = per_example(params, Tensor(xs), Tensor(ys))
    fast = ap.compile(per_example)
    for trial in range(2):
        if trial:
            xs = xs + 1.0
        compiled = fast(params, Tensor(xs), Tensor(ys))
        eager = per_example(params, Tensor(xs), Tensor(ys))
        for name, p in model.named_parameters():
            loop = []
            for x, y in zip(xs, ys, strict=True):
                model.zero_grad()
                nn.cross_entropy(model(Tensor(x[None])), np.array([y])).backward()
                loop.append(p.grad().data().copy())
            np.testing.assert_allclose(eager[name].data(), np.stack(loop), rtol=1e-5,
                                       atol=1e-6)
            np.testing.assert_allclose(compiled[name].data(), eager[name].data(), rtol=1e-6,
                                       atol=1e-7)
    assert fast.cache_info()["compiles"] == 1
    assert set(got) == set(params)


def test_functional_call_swaps_and_restores_parameters_including_tied_ones() -> None:
    lin = nn.Linear(3, 3, rng=0)
    model = nn.Sequential(lin, nn.ReLU(), lin)  # one layer used twice: tied
    original = lin.weight
    new = Tensor(np.eye(3, dtype=np.float32))
    zero_b = Tensor(np.zeros(3, dtype=np.float32))
    x = Tensor(np.array([[1.0, -2.0, 3.0]], dtype=np.float32))
    out = functional_call(model, {"0.weight": new, "0.bias": zero_b}, (x,))
    np.testing.assert_allclose(out.data(), [[1.0, 0.0, 3.0]])
    assert lin.weight is original
    with pytest.raises(ap.TransformError, match="no parameter or buffer"):
        functional_call(model, {"nope": new}, (x,))
    with pytest.raises(ap.TransformError, match="shape"):
        functional_call(model, {"0.weight": Tensor(np.eye(2))}, (x,))
    with pytest.raises(ap.TransformError, match="strict"):
        functional_call(model, {"0.weight": new}, (x,), strict=True)
    with pytest.raises(ValueError):
        functional_call(model, {"0.weight": new}, (Tensor(np.ones((1, 4))),))
    assert lin.weight is original


# --- transforms under compile and trace -------------------------------------------------------

def test_compiled_transforms_equal_eager_over_calls() -> None:
    def step(x: Tensor, w: Tensor) -> tuple:
        h = hessian(lambda x: wavy(x, w))(x)
        _, t = jvp(lambda x: vec(x), (x,), (x * 0.5,))
        return h, t, jacrev(vec)(x)

    fast = ap.compile(step)
    for k in range(3):
        x, w = Tensor(X + k), Tensor(W - k)
        for got, want in zip(fast(x, w), step(x, w), strict=True):
            np.testing.assert_allclose(got.data(), want.data(), rtol=1e-10, atol=1e-12)
    assert fast.cache_info()["compiles"] == 1
    text = str(ap.trace(lambda x: jvp(vec, (x,), (x,))[1], Tensor(X)))
    assert "sin" in text and "cos" in text


def test_vmap_under_detect_anomaly_checks_ops_as_eager_does() -> None:
    with ap.detect_anomaly():
        out = vmap(lambda x: x.exp())(Tensor(np.zeros((2, 3))))
        np.testing.assert_array_equal(out.data(), np.ones((2, 3)))
        with pytest.raises(ap.AnomalyError, match="log"), np.errstate(invalid="ignore"):
            vmap(lambda x: x.log())(Tensor(-np.ones((2, 3))))


def test_vmap_in_axes_dict_pairs_by_key_and_jvp_tangents_too() -> None:
    d = {"a": Tensor(np.arange(6.0).reshape(2, 3)), "b": Tensor(np.ones(3))}
    got = vmap(lambda d: d["a"] * d["b"], in_axes=({"b": None, "a": 0},))(d)
    np.testing.assert_allclose(got.data(), d["a"].data())
    primals = ({"a": Tensor(np.array(1.0)), "b": Tensor(np.array(2.0))},)
    tangents = ({"b": Tensor(np.array(10.0)), "a": Tensor(np.array(1.0))},)
    _, t = jvp(lambda d: d["a"] * 2.0 + d["b"] * 3.0, primals, tangents)
    assert t.item() == 32.0  # 2 * ta + 3 * tb, paired by key
    with pytest.raises(ap.TransformError, match="structure"):
        jvp(lambda d: d["a"], primals, ({"a": Tensor(np.array(1.0))},))


def test_transform_results_carry_no_graph_when_nothing_outside_requires_grad() -> None:
    def f(x: Tensor) -> Tensor:
        return (x * x).sum()

    value, g = value_and_grad(f)(np.ones(3))
    assert not g.requires_grad_enabled() and not value.requires_grad_enabled()
    np.testing.assert_allclose(np.asarray(g), [2.0, 2.0, 2.0])
    w = Tensor(np.ones(3))
    for _ in range(3):  # a plain loop does not grow one graph across steps
        w = w - grad(f)(w) * 0.25
    assert w._node is None and w.is_leaf()
    np.testing.assert_allclose(w.data(), np.full(3, 0.125))
    h = ap.compile(lambda x: x.exp())
    np.testing.assert_allclose(grad(lambda x: h(x).sum())(Tensor(np.zeros(2))).data(), [1, 1])
    out, t = jvp(lambda x: x.sin(), (Tensor(np.zeros(2)),), (Tensor(np.ones(2)),))
    assert not out.requires_grad_enabled() and not t.requires_grad_enabled()
    p = Tensor(np.ones(3)).requires_grad()  # a captured parameter: the graph is kept
    assert grad(lambda x: (x * x * p).sum())(Tensor(np.ones(3))).requires_grad_enabled()


def test_vmap_in_place_update_of_a_batched_argument_updates_each_example() -> None:
    xs = Tensor(np.arange(6.0).reshape(3, 2))
    out = vmap(lambda x: (x.add_(1.0), x * 2.0)[1])(xs)
    np.testing.assert_allclose(xs.data(), np.arange(6.0).reshape(3, 2) + 1)
    np.testing.assert_allclose(out.data(), (np.arange(6.0).reshape(3, 2) + 1) * 2)
    cols = Tensor(np.zeros((2, 3)))
    vmap(lambda c: c.add_(c * 0.0 + 5.0), in_axes=1)(cols)
    np.testing.assert_allclose(cols.data(), np.full((2, 3), 5.0))


def test_vmap_shared_in_place_update_of_an_argument_batched_on_another_axis() -> None:
    """``c.zero_()`` inside vmap with ``in_axes=1``: the new value is the same for every
    example, so it is spread over the batch along the argument's own batch axis."""
    cols = Tensor(np.ones((2, 3)))
    out = vmap(lambda c: (c.zero_(), c + 2.0)[1], in_axes=1)(cols)
    np.testing.assert_array_equal(cols.data(), np.zeros((2, 3)))
    np.testing.assert_array_equal(out.data(), np.full((3, 2), 2.0))
