"""Attention: ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention`` and
``nn.TransformerEncoderLayer`` against numpy references (PyTorch's semantics), gradients by
finite differences, errors, weights ported from PyTorch, and compiled training steps.

(SDPA's values, float32, first- and second-order gradients and compiled-equals-eager per mask
kind are the op cases in ``tests/cases_attention.py``.)"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from cases_attention import ref_sdpa
from differential import Program, run_differential
from gradcheck import check_first_order, check_second_order

import aprender as ap
import aprender.nn.functional as F  # noqa: N812 - PyTorch's alias
from aprender import nn, optim
from aprender.errors import DTypeError, ShapeError
from aprender.runtime.random import Generator

F64 = np.float64
_erf = np.vectorize(math.erf)


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def _sdpa(q: Any, k: Any, v: Any, **kw: Any) -> np.ndarray:
    return F.scaled_dot_product_attention(ap.Tensor(q), ap.Tensor(k), ap.Tensor(v), **kw).data()


# --- scaled_dot_product_attention ------------------------------------------------------------
def test_sdpa_bool_mask_true_means_take_part() -> None:
    rng = np.random.default_rng(0)
    q, k, v = _rand(rng, 3, 4), _rand(rng, 5, 4), _rand(rng, 5, 2)
    only = np.zeros((3, 5), dtype=bool)
    only[0, 4], only[1, 0], only[2, 2] = True, True, True  # each query sees one key
    np.testing.assert_allclose(_sdpa(q, k, v, attn_mask=only), v[[4, 0, 2]], rtol=1e-14)


def test_sdpa_is_causal_is_the_top_left_lower_triangle() -> None:
    rng = np.random.default_rng(1)
    q, k, v = _rand(rng, 2, 4, 3), _rand(rng, 2, 6, 3), _rand(rng, 2, 6, 2)
    out = _sdpa(q, k, v, is_causal=True)
    np.testing.assert_allclose(out[:, 0], v[:, 0], rtol=1e-14)  # query 0 sees key 0 only
    tril = np.tril(np.ones((4, 6), dtype=bool))
    np.testing.assert_allclose(out, _sdpa(q, k, v, attn_mask=tril), rtol=1e-14)
    np.testing.assert_allclose(out, ref_sdpa(q, k, v, mask=tril), rtol=1e-12)


def test_sdpa_float_mask_is_added_and_default_scale_is_one_over_sqrt_e() -> None:
    rng = np.random.default_rng(2)
    q, k, v = _rand(rng, 2, 3, 4), _rand(rng, 2, 5, 4), _rand(rng, 2, 5, 3)
    bias = _rand(rng, 3, 5)
    s = q @ np.swapaxes(k, -1, -2) / 2.0 + bias  # E = 4
    p = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    np.testing.assert_allclose(_sdpa(q, k, v, attn_mask=bias), p @ v, rtol=1e-12)
    s = q @ np.swapaxes(k, -1, -2) * 0.25
    p = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    np.testing.assert_allclose(_sdpa(q, k, v, scale=0.25), p @ v, rtol=1e-12)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_tensor_masks_equal_numpy_masks(kind: str) -> None:
    rng = np.random.default_rng(3)
    q, k, v = _rand(rng, 2, 2, 3, 4), _rand(rng, 2, 2, 5, 4), _rand(rng, 2, 2, 5, 3)
    mask: np.ndarray = rng.random((2, 1, 3, 5)) > 0.5
    mask[0, 0, 1] = False  # a query that sees no key
    if kind == "float":
        mask = np.where(mask, rng.standard_normal(mask.shape), -np.inf)
    expected = ref_sdpa(q, k, v, mask=mask)
    np.testing.assert_allclose(_sdpa(q, k, v, attn_mask=mask), expected, rtol=1e-12)
    np.testing.assert_allclose(_sdpa(q, k, v, attn_mask=ap.Tensor(mask)), expected, rtol=1e-12)


def test_sdpa_fully_masked_query_gives_zeros_and_zero_gradients() -> None:
    rng = np.random.default_rng(4)
    arrays = (_rand(rng, 3, 4), _rand(rng, 5, 4), _rand(rng, 5, 2))
    for mask in (np.array([[True] * 5, [False] * 5, [True, False, True, False, True]]),
                 ap.Tensor(np.array([[0.0] * 5, [-np.inf] * 5, [0.0] * 5]))):
        xs = [ap.Tensor(a).requires_grad() for a in arrays]
        out = F.scaled_dot_product_attention(*xs, attn_mask=mask)
        assert np.array_equal(out.data()[1], [0.0, 0.0])
        (out * ap.Tensor(_rand(rng, 3, 2))).sum().backward()
        assert np.array_equal(xs[0].grad().data()[1], np.zeros(4))
        assert all(np.isfinite(x.grad().data()).all() for x in xs)


def test_sdpa_gradients_first_and_second_order_with_float_tensor_mask() -> None:
    """The float mask is an input too: its gradient is the scores' gradient."""
    rng = np.random.default_rng(5)
    arrays = [_rand(rng, 2, 3, 4), _rand(rng, 2, 4, 4), _rand(rng, 2, 4, 3), _rand(rng, 3, 4)]

    def fn(q: ap.Tensor, k: ap.Tensor, v: ap.Tensor, m: ap.Tensor) -> ap.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

    check_first_order(fn, arrays)
    check_second_order(fn, [a[..., :2, :] if i < 3 else a[:2, :2]
                            for i, a in enumerate(arrays)])


def test_sdpa_no_keys_gives_zeros() -> None:
    rng = np.random.default_rng(6)
    out = _sdpa(_rand(rng, 3, 4), np.zeros((0, 4)), np.zeros((0, 2)))
    assert out.shape == (3, 2) and not out.any()


def test_sdpa_float32_stays_float32_with_a_float64_mask() -> None:
    rng = np.random.default_rng(7)
    q, k, v = (_rand(rng, *s).astype(np.float32) for s in ((3, 4), (5, 4), (5, 2)))
    out = F.scaled_dot_product_attention(ap.Tensor(q), ap.Tensor(k), ap.Tensor(v),
                                         attn_mask=_rand(rng, 3, 5))
    assert out.dtype == np.float32


def test_sdpa_dropout_is_f_dropout_of_the_probabilities() -> None:
    rng = np.random.default_rng(8)
    q, k, v = _rand(rng, 2, 3, 4), _rand(rng, 2, 5, 4), _rand(rng, 2, 5, 3)
    out = F.scaled_dot_product_attention(ap.Tensor(q), ap.Tensor(k), ap.Tensor(v),
                                         dropout_p=0.4, generator=Generator(11))
    s = q @ np.swapaxes(k, -1, -2) / 2.0
    p = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    dropped = F.dropout(ap.Tensor(p), 0.4, generator=Generator(11)).data()
    assert (dropped == 0).any() and (dropped != 0).any()
    np.testing.assert_allclose(out.data(), dropped @ v, rtol=1e-12)
    zeros = _sdpa(q, k, v, dropout_p=1.0)
    assert zeros.shape == (2, 3, 3) and not zeros.any()


def test_sdpa_with_dropout_compiles_to_the_same_draws() -> None:
    def build() -> Program:
        g = Generator(3)
        w = ap.Tensor(np.random.default_rng(0).standard_normal((4, 4))).requires_grad()

        def step(x: np.ndarray, mask: np.ndarray) -> ap.Tensor:
            h = ap.Tensor(x) @ w
            out = F.scaled_dot_product_attention(h, h, h, attn_mask=mask, dropout_p=0.3,
                                                 generator=g)
            loss = (out * out).sum()
            loss.backward()
            return loss

        def args(i: int) -> tuple[tuple, dict]:
            rng = np.random.default_rng(i)
            return (rng.standard_normal((2, 5, 4)), rng.random((5, 5)) > 0.3), {}

        return Program(step, {"w": w, "g": g}, args)

    assert run_differential(build, 3) == "equal"


@pytest.mark.parametrize(("shapes", "kw", "error", "text"), [
    (((4,), (5, 4), (5, 2)), {}, ShapeError, "at least 2-D"),
    (((3, 4), (5, 3), (5, 2)), {}, ShapeError, "embedding size"),
    (((3, 4), (5, 4), (4, 2)), {}, ShapeError, "same length S"),
    (((3, 4), (5, 4), (5, 2)), {"attn_mask": np.ones((4, 5), bool)}, ShapeError,
     "does not broadcast"),
    (((3, 4), (5, 4), (5, 2)), {"attn_mask": np.ones((3, 5), np.int64)}, DTypeError,
     "bool or float"),
    (((3, 4), (5, 4), (5, 2)), {"attn_mask": np.ones((3, 5), bool), "is_causal": True},
     ShapeError, "not both"),
    (((3, 4), (5, 4), (5, 2)), {"dropout_p": 1.5}, ShapeError, "dropout_p"),
    (((1, 4, 3, 4), (1, 2, 5, 4), (1, 2, 5, 2)), {}, ShapeError, "enable_gqa=True"),
    (((1, 4, 3, 4), (1, 3, 5, 4), (1, 3, 5, 2)), {"enable_gqa": True}, ShapeError,
     "multiple"),
])
def test_sdpa_errors(shapes: tuple, kw: dict, error: type, text: str) -> None:
    arrays = [np.zeros(s) for s in shapes]
    with pytest.raises(error, match=text):
        F.scaled_dot_product_attention(*[ap.Tensor(a) for a in arrays], **kw)


def test_sdpa_dtypes_must_agree_and_be_floating() -> None:
    with pytest.raises(DTypeError, match="one floating dtype"):
        F.scaled_dot_product_attention(ap.Tensor(np.zeros((3, 4))), ap.Tensor(np.zeros((5, 4))),
                                       ap.Tensor(np.zeros((5, 2), np.float32)))
    ints = ap.Tensor(np.zeros((3, 3), np.int64))
    with pytest.raises(DTypeError, match="one floating dtype"):
        F.scaled_dot_product_attention(ints, ints, ints)


# --- MultiheadAttention: numpy reference -----------------------------------------------------
def _randomize(module: nn.Module, seed: int) -> dict[str, np.ndarray]:
    """Random values (biases too) for every parameter; returns the state dict."""
    rng = np.random.default_rng(seed)
    state = {k: rng.standard_normal(v.shape) * 0.5 for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    return state


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    top = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isneginf(top), 0.0, top))
    total = e.sum(-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def ref_mha(state: dict, heads: int, q: np.ndarray, k: np.ndarray, v: np.ndarray,
            key_padding_mask: Any = None, attn_mask: Any = None,
            prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's multi_head_attention_forward for batch-first ``[N, L, E]`` inputs in numpy
    (state in aprender's layout: ``out_proj.weight`` is ``[in, out]``); returns the output and
    the per-head weights ``[N, H, L, S]``."""
    st = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    e = q.shape[-1]
    if "in_proj_weight" in st:
        wq, wk, wv = np.split(st["in_proj_weight"], 3)
    else:
        wq, wk, wv = st["q_proj_weight"], st["k_proj_weight"], st["v_proj_weight"]
    bq, bk, bv = np.split(st.get("in_proj_bias", np.zeros(3 * e)), 3)
    n, length, source, d = q.shape[0], q.shape[1], k.shape[1], e // heads

    def split(x: np.ndarray) -> np.ndarray:
        return x.reshape(n, x.shape[1], heads, d).transpose(0, 2, 1, 3)

    qh, kh, vh = split(q @ wq.T + bq), split(k @ wk.T + bk), split(v @ wv.T + bv)
    bias = np.zeros((n, heads, length, source))
    if attn_mask is not None:
        m = np.where(attn_mask, -np.inf, 0.0) if attn_mask.dtype == bool else attn_mask
        bias = bias + (m.reshape(n, heads, length, source) if m.ndim == 3 else m)
    if key_padding_mask is not None:
        m = key_padding_mask
        m = np.where(m, -np.inf, 0.0) if m.dtype == bool else m
        bias = bias + m[:, None, None, :]
    p = _softmax_rows(qh @ kh.transpose(0, 1, 3, 2) / math.sqrt(d) + bias)
    out = (p @ vh).transpose(0, 2, 1, 3).reshape(n, length, e)
    out = out @ st["out_proj.weight"] + st.get("out_proj.bias", 0.0)
    return out, p


def _masks(rng: np.random.Generator, n: int, heads: int, length: int, source: int,
           kind: str) -> dict:
    if kind == "none":
        return {}
    kpm = rng.random((n, source)) > 0.7
    kpm[:, 0] = False
    if kind == "bool":
        attn = rng.random((length, source)) > 0.7
        attn[:, 1] = False
        return {"key_padding_mask": kpm, "attn_mask": attn}
    return {"key_padding_mask": np.where(kpm, -np.inf, 0.0),
            "attn_mask": rng.standard_normal((n * heads, length, source))}


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("inputs", ["self", "kv_same", "all_different", "kdim_vdim"])
@pytest.mark.parametrize("masks", ["none", "bool", "float"])
def test_mha_matches_numpy_reference(batch_first: bool, inputs: str, masks: str) -> None:
    e, h, n, length = 8, 2, 3, 4
    kdim = 6 if inputs == "kdim_vdim" else None
    vdim = 5 if inputs == "kdim_vdim" else None
    source = length if inputs == "self" else 5
    mha = nn.MultiheadAttention(e, h, batch_first=batch_first, kdim=kdim, vdim=vdim, rng=0,
                                dtype=F64)
    state = _randomize(mha, 1)
    rng = np.random.default_rng(2)
    q = _rand(rng, n, length, e)
    k = q if inputs == "self" else _rand(rng, n, source, kdim or e)
    v = k if inputs in ("self", "kv_same") else _rand(rng, n, source, vdim or e)
    kw = _masks(rng, n, h, length, source, masks)
    expected, probs = ref_mha(state, h, q, k, v, **kw)

    def layout(x: np.ndarray) -> ap.Tensor:
        return ap.Tensor(x if batch_first else x.transpose(1, 0, 2))

    tq = layout(q)
    tk = tq if k is q else layout(k)
    tv = tk if v is k else layout(v)
    out, weights = mha(tq, tk, tv, **kw)
    got = out.data() if batch_first else out.data().transpose(1, 0, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weights.data(), probs.mean(1), rtol=1e-12, atol=1e-14)
    _, per_head = mha(tq, tk, tv, average_attn_weights=False, **kw)
    np.testing.assert_allclose(per_head.data(), probs, rtol=1e-12, atol=1e-14)
    out2, none = mha(tq, tk, tv, need_weights=False, **kw)
    assert none is None
    np.testing.assert_array_equal(out2.data(), out.data())


def test_mha_tensor_masks_equal_numpy_masks_and_fully_padded_rows_give_zeros() -> None:
    mha = nn.MultiheadAttention(4, 2, rng=0, dtype=F64)
    state = _randomize(mha, 3)
    rng = np.random.default_rng(4)
    x = _rand(rng, 2, 3, 4)
    kpm = np.array([[False, True, False], [True, True, True]])  # batch 1 sees nothing
    attn = np.triu(np.ones((3, 3), bool), 1)
    expected, probs = ref_mha(state, 2, x, x, x, key_padding_mask=kpm, attn_mask=attn)
    # batch 1: zero weights (not nan, see the docstring), so the output is out_proj's bias
    assert not probs[1].any()
    np.testing.assert_allclose(expected[1], np.broadcast_to(state["out_proj.bias"], (3, 4)))
    t = ap.Tensor(x)
    for masks in ({"key_padding_mask": kpm, "attn_mask": attn},
                  {"key_padding_mask": ap.Tensor(kpm), "attn_mask": ap.Tensor(attn)},
                  {"key_padding_mask": kpm, "attn_mask": ap.Tensor(attn)}):
        out, weights = mha(t, t, t, **masks)
        np.testing.assert_allclose(out.data(), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(weights.data(), probs.mean(1), rtol=1e-12, atol=1e-14)


def test_mha_unbatched() -> None:
    mha = nn.MultiheadAttention(6, 3, rng=0, dtype=F64)
    state = _randomize(mha, 5)
    rng = np.random.default_rng(6)
    q, kv = _rand(rng, 4, 6), _rand(rng, 5, 6)
    kpm = np.array([False, False, True, False, True])
    attn = rng.standard_normal((3, 4, 5))
    expected, probs = ref_mha(state, 3, q[None], kv[None], kv[None], key_padding_mask=kpm[None],
                              attn_mask=attn)
    tkv = ap.Tensor(kv)
    out, weights = mha(ap.Tensor(q), tkv, tkv, key_padding_mask=kpm, attn_mask=attn,
                       average_attn_weights=False)
    assert out.shape == (4, 6) and weights.shape == (3, 4, 5)
    np.testing.assert_allclose(out.data(), expected[0], rtol=1e-12)
    np.testing.assert_allclose(weights.data(), probs[0], rtol=1e-12)


def test_mha_gradients_for_inputs_and_parameters() -> None:
    mha = nn.MultiheadAttention(4, 2, rng=0, dtype=F64)
    _randomize(mha, 7)
    rng = np.random.default_rng(8)
    kpm = np.array([[False, False, True], [False, False, False]])

    def self_attention(x: ap.Tensor, w_in: ap.Tensor, w_out: ap.Tensor) -> ap.Tensor:
        mha.in_proj_weight, mha.out_proj.weight = w_in, w_out
        return mha(x, x, x, key_padding_mask=kpm)[0]

    arrays = [_rand(rng, 2, 3, 4), _rand(rng, 12, 4), _rand(rng, 4, 4)]
    check_first_order(self_attention, arrays)

    def cross(q: ap.Tensor, k: ap.Tensor, v: ap.Tensor) -> ap.Tensor:
        out, weights = mha(q, k, v, average_attn_weights=False)
        return out.sum() + (weights * weights).sum()

    check_first_order(cross, [_rand(rng, 2, 3, 4), _rand(rng, 2, 5, 4), _rand(rng, 2, 5, 4)])
    check_second_order(lambda q, k: mha(q, k, k)[0], [_rand(rng, 1, 2, 4), _rand(rng, 1, 3, 4)])


def test_mha_parameters_are_named_and_initialised_as_torch() -> None:
    mha = nn.MultiheadAttention(8, 2, rng=0)
    shapes = {k: v.shape for k, v in mha.state_dict().items()}
    assert list(shapes.items()) == [("in_proj_weight", (24, 8)), ("in_proj_bias", (24,)),
                                    ("out_proj.weight", (8, 8)), ("out_proj.bias", (8,))]
    w = mha.in_proj_weight.data()
    bound = math.sqrt(6.0 / (8 + 24))  # xavier_uniform over [3E, E]
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert not mha.in_proj_bias.data().any() and not mha.out_proj.bias.data().any()
    np.testing.assert_array_equal(nn.MultiheadAttention(8, 2, rng=0).in_proj_weight.data(), w)
    split = nn.MultiheadAttention(8, 2, kdim=3, vdim=5, bias=False)
    assert {k: v.shape for k, v in split.state_dict().items()} == {
        "q_proj_weight": (8, 8), "k_proj_weight": (8, 3), "v_proj_weight": (8, 5),
        "out_proj.weight": (8, 8)}
    assert mha.head_dim == 4 and mha.batch_first and mha.dropout == 0.0


def test_mha_dropout_in_training_returns_the_dropped_weights() -> None:
    mha = nn.MultiheadAttention(4, 2, dropout=0.5, rng=0, dtype=F64)
    state = _randomize(mha, 9)
    x = np.random.default_rng(10).standard_normal((2, 3, 4))
    t = ap.Tensor(x)
    expected, probs = ref_mha(state, 2, x, x, x)
    out, weights = mha(t, t, t, average_attn_weights=False)
    dropped = weights.data()
    kept = dropped != 0
    assert kept.any() and (~kept).any()
    np.testing.assert_allclose(dropped[kept], probs[kept] * 2.0, rtol=1e-12)
    e = np.split(state["in_proj_weight"], 3)[2]
    vh = (x @ e.T + np.split(state["in_proj_bias"], 3)[2]).reshape(2, 3, 2, 2).transpose(
        0, 2, 1, 3)
    manual = (dropped @ vh).transpose(0, 2, 1, 3).reshape(2, 3, 4) @ state[
        "out_proj.weight"] + state["out_proj.bias"]
    np.testing.assert_allclose(out.data(), manual, rtol=1e-12)
    mha.eval()
    np.testing.assert_allclose(mha(t, t, t)[0].data(), expected, rtol=1e-12)


@pytest.mark.parametrize(("call", "text"), [
    (lambda m, x: m(x, x, x, is_causal=True), "give attn_mask"),
    (lambda m, x: m(x, x, x, attn_mask=np.zeros((3, 4), bool)), "attn_mask has shape"),
    (lambda m, x: m(x, x, x, attn_mask=np.zeros((2, 3, 3), bool)), "attn_mask has shape"),
    (lambda m, x: m(x, x, x, key_padding_mask=np.zeros((3, 2), bool)), "key_padding_mask"),
    (lambda m, x: m(x, x, ap.Tensor(np.zeros((2, 3)))), "all 3-D"),
    (lambda m, x: m(ap.Tensor(np.zeros((2, 3, 5))), x, x), "embed_dim"),
    (lambda m, x: m(x, ap.Tensor(np.zeros((2, 4, 4))), x), "same batch and length"),
    (lambda m, x: m(x, ap.Tensor(np.zeros((3, 3, 4))), ap.Tensor(np.zeros((3, 3, 4)))),
     "same batch size"),
])
def test_mha_errors(call: Any, text: str) -> None:
    m = nn.MultiheadAttention(4, 2, rng=0, dtype=F64)
    with pytest.raises(ShapeError, match=text):
        call(m, ap.Tensor(np.zeros((2, 3, 4))))


def test_mha_constructor_errors() -> None:
    with pytest.raises(ShapeError, match="divisible"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ShapeError, match="dropout"):
        nn.MultiheadAttention(4, 2, dropout=2.0)


# --- TransformerEncoderLayer ------------------------------------------------------------------
def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def ref_encoder_layer(state: dict, heads: int, x: np.ndarray, activation: str,
                      norm_first: bool, eps: float, **masks: Any) -> np.ndarray:
    """PyTorch's TransformerEncoderLayer in eval mode, batch-first, in numpy."""
    def act(h: np.ndarray) -> np.ndarray:
        return np.maximum(h, 0.0) if activation == "relu" else 0.5 * h * (
            1.0 + _erf(h / math.sqrt(2.0)))

    def sa(h: np.ndarray) -> np.ndarray:
        return ref_mha(state, heads, h, h, h, prefix="self_attn.", **masks)[0]

    def ff(h: np.ndarray) -> np.ndarray:
        h = act(h @ state["linear1.weight"] + state["linear1.bias"])
        return h @ state["linear2.weight"] + state["linear2.bias"]

    def n1(h: np.ndarray) -> np.ndarray:
        return _layer_norm(h, state["norm1.weight"], state["norm1.bias"], eps)

    def n2(h: np.ndarray) -> np.ndarray:
        return _layer_norm(h, state["norm2.weight"], state["norm2.bias"], eps)

    if norm_first:
        x = x + sa(n1(x))
        return x + ff(n2(x))
    x = n1(x + sa(x))
    return n2(x + ff(x))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_encoder_layer_matches_numpy_reference(norm_first: bool, activation: str,
                                               batch_first: bool) -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.2, activation=activation,
                                       layer_norm_eps=1e-4, batch_first=batch_first,
                                       norm_first=norm_first, rng=0, dtype=F64).eval()
    state = _randomize(layer, 11)
    rng = np.random.default_rng(12)
    x = _rand(rng, 3, 5, 8)
    kpm = rng.random((3, 5)) > 0.7
    kpm[:, 0] = False
    causal = np.triu(np.ones((5, 5), bool), 1)
    expected = ref_encoder_layer(state, 2, x, activation, norm_first, 1e-4,
                                 key_padding_mask=kpm, attn_mask=causal)
    src = ap.Tensor(x if batch_first else x.transpose(1, 0, 2))
    out = layer(src, src_mask=causal, src_key_padding_mask=kpm, is_causal=True).data()
    np.testing.assert_allclose(out if batch_first else out.transpose(1, 0, 2), expected,
                               rtol=1e-11, atol=1e-12)
    plain = ref_encoder_layer(state, 2, x, activation, norm_first, 1e-4)
    out = layer(src).data()
    np.testing.assert_allclose(out if batch_first else out.transpose(1, 0, 2), plain,
                               rtol=1e-11, atol=1e-12)


def _torch_layout_weights() -> dict[str, np.ndarray]:
    """Deterministic weights in PyTorch's layout for a TransformerEncoderLayer(4, 2, 6)."""
    a = np.arange
    return {
        "self_attn.in_proj_weight": np.sin(a(48)).reshape(12, 4) * 0.5,
        "self_attn.in_proj_bias": np.cos(a(12)) * 0.1,
        "self_attn.out_proj.weight": np.sin(a(16) * 0.7).reshape(4, 4) * 0.5,
        "self_attn.out_proj.bias": np.linspace(-0.1, 0.1, 4),
        "linear1.weight": np.cos(a(24) * 0.3).reshape(6, 4) * 0.5,
        "linear1.bias": np.linspace(-0.2, 0.2, 6),
        "linear2.weight": np.sin(a(24) * 0.9 + 1).reshape(4, 6) * 0.5,
        "linear2.bias": 0.05 * a(4),
        "norm1.weight": 1 + 0.1 * a(4), "norm1.bias": -0.05 * a(4),
        "norm2.weight": 1 - 0.1 * a(4), "norm2.bias": 0.02 * a(4),
    }


#: torch 2.13 ``nn.TransformerEncoderLayer(4, 2, 6, activation="gelu", batch_first=True,
#: norm_first=...)`` in float64, eval, loaded with ``_torch_layout_weights()``, on
#: ``sin(1.3 * arange(24)).reshape(2, 3, 4)`` with key_padding_mask [[F, F, T], [F, F, F]]
TORCH_OUT = {
    False: [[[-0.3258444526, 1.0946071885, 0.5107889227, -0.9596547815],
             [-1.4933627414, -0.2124813343, 0.9731783261, 0.4696416993],
             [-1.0724735553, -0.7295035969, 0.4716428084, 1.0159912734]],
            [[-0.1836368855, -0.8703797554, -0.3486539905, 1.2211356491],
             [1.369678396, 0.387429084, -1.0183943944, -0.2584579585],
             [0.7806108513, 0.9491658456, -0.2183028481, -0.9830971504]]],
    True: [[[-0.2276086929, 0.7959762903, 0.473676453, -0.3747482094],
            [-1.133756042, -0.1576353225, 1.4854796439, 0.8598217732],
            [-1.2762995789, -0.9389179827, 0.9026567256, 1.6275294306]],
           [[-0.4361215527, -0.8723341387, -0.3951391621, 1.145288929],
            [0.4191719671, 0.1795418479, -1.2753949755, -0.1309498816],
            [0.5622661632, 0.8336552069, -0.5060712521, -0.910881349]]],
}


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_loads_torch_weights(norm_first: bool) -> None:
    """The porting recipe: PyTorch's state dict loads as it is once the Linear weights
    (``self_attn.out_proj``, ``linear1``, ``linear2``) are transposed to ``[in, out]``."""
    layer = nn.TransformerEncoderLayer(4, 2, 6, activation="gelu", norm_first=norm_first,
                                       dtype=F64).eval()
    torch_state = _torch_layout_weights()
    assert list(layer.state_dict()) == list(torch_state)  # PyTorch's names, in its order
    linear = ("self_attn.out_proj.weight", "linear1.weight", "linear2.weight")
    layer.load_state_dict({k: v.T if k in linear else v for k, v in torch_state.items()})
    x = np.sin(np.arange(24) * 1.3).reshape(2, 3, 4)
    kpm = np.array([[False, False, True], [False, False, False]])
    out = layer(ap.Tensor(x), src_key_padding_mask=kpm)
    np.testing.assert_allclose(out.data(), TORCH_OUT[norm_first], rtol=1e-8, atol=1e-9)


def test_encoder_layer_submodules_and_activation_choices() -> None:
    layer = nn.TransformerEncoderLayer(8, 2, rng=0)
    names = [name for name, _ in layer._children()]
    for name in ("self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1",
                 "dropout2"):
        assert name in names
    assert isinstance(layer.self_attn, nn.MultiheadAttention)
    assert layer.linear1.weight.shape == (8, 2048) and layer.dropout.p == 0.1
    assert layer.self_attn.dropout == 0.1 and layer.norm1.eps == 1e-5
    x = ap.Tensor(np.random.default_rng(0).standard_normal((2, 3, 4)))
    relu = nn.TransformerEncoderLayer(4, 2, 6, rng=1).eval()
    custom = nn.TransformerEncoderLayer(4, 2, 6, activation=nn.ReLU(), rng=1).eval()
    func = nn.TransformerEncoderLayer(4, 2, 6, activation=lambda t: t.relu(), rng=1).eval()
    expected = relu(x).data()
    np.testing.assert_array_equal(custom(x).data(), expected)
    np.testing.assert_array_equal(func(x).data(), expected)
    with pytest.raises(ValueError, match="relu or gelu"):
        nn.TransformerEncoderLayer(4, 2, activation="tanh")


def test_encoder_layer_without_bias_has_no_biases() -> None:
    layer = nn.TransformerEncoderLayer(4, 2, 6, bias=False, rng=0)
    assert not [name for name in layer.state_dict() if name.endswith("bias")]


def test_encoder_layer_dropout_streams_follow_rng() -> None:
    x = ap.Tensor(np.random.default_rng(0).standard_normal((2, 3, 4)))
    a, b = (nn.TransformerEncoderLayer(4, 2, 6, dropout=0.3, rng=5) for _ in range(2))
    np.testing.assert_array_equal(a(x).data(), b(x).data())  # same seed, same draws
    assert not np.array_equal(a(x).data(), a.eval()(x).data())  # dropout acts in training


# --- compiled training steps ------------------------------------------------------------------
class _Tiny(nn.Module):
    def __init__(self, norm_first: bool, activation: str, dropout: float) -> None:
        self.layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=dropout,
                                                activation=activation, norm_first=norm_first,
                                                rng=0, dtype=F64)
        self.head = nn.Linear(8, 3, rng=1, dtype=F64)

    def forward(self, x: ap.Tensor, mask: Any = None, kpm: Any = None) -> ap.Tensor:
        return self.head(self.layer(x, src_mask=mask, src_key_padding_mask=kpm).mean(1))


def _training(norm_first: bool, activation: str, masks: bool, train: bool) -> Any:
    def build() -> Program:
        model = _Tiny(norm_first, activation, 0.2)
        model.train(train)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x: np.ndarray, y: np.ndarray, mask: Any, kpm: Any) -> ap.Tensor:
            opt.zero_grad()
            loss = nn.cross_entropy(model(ap.Tensor(x), mask, kpm), y)
            loss.backward()
            opt.step()
            return loss

        def args(i: int) -> tuple[tuple, dict]:
            rng = np.random.default_rng(i)
            kpm = rng.random((4, 5)) > 0.7
            kpm[:, 0] = False
            causal = np.triu(np.ones((5, 5), bool), 1)
            return (rng.standard_normal((4, 5, 8)), rng.integers(0, 3, 4),
                    causal if masks else None, kpm if masks else None), {}

        return Program(step, {"model": model, "opt": opt}, args)

    return build


@pytest.mark.parametrize(("norm_first", "activation", "masks"), [
    (False, "relu", False), (True, "gelu", True), (False, "gelu", True)])
def test_compiled_training_step_equals_eager_in_eval_mode(norm_first: bool, activation: str,
                                                          masks: bool) -> None:
    assert run_differential(_training(norm_first, activation, masks, False), 3) == "equal"


def test_compiled_training_step_with_dropout_equals_eager() -> None:
    assert run_differential(_training(True, "relu", True, True), 3) == "equal"
