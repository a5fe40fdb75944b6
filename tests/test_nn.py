"""Modules, layers, losses and the data loader."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import check_first_order

import aprender as ap
from aprender import nn
from aprender.autograd import Tensor
from aprender.data import DataLoader


class Block(nn.Module):
    def __init__(self) -> None:
        self.layers = [nn.Linear(3, 4, rng=0), nn.ReLU()]
        self.heads = {"a": nn.Linear(4, 2, rng=1), "b": nn.Linear(4, 1, bias=False, rng=2)}
        self.scale = Tensor([1.0]).requires_grad()
        self.frozen = Tensor([5.0])  # no grad: not a parameter
        self.shared = self.scale  # the same tensor twice is listed once
        self.seq = nn.Sequential(nn.Linear(2, 2, rng=3), nn.Tanh())
        self.blocks = nn.ModuleList([nn.LayerNorm(2)])

    def forward(self, x: Tensor) -> Tensor:
        h = self.layers[1](self.layers[0](x))
        return self.blocks[0](self.seq(self.heads["a"](h))).mul(self.scale)


def test_parameter_discovery_and_dotted_names() -> None:
    names = [n for n, _ in Block().named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "heads.a.weight", "heads.a.bias",
                     "heads.b.weight", "scale", "seq.0.weight", "seq.0.bias",
                     "blocks.0.weight", "blocks.0.bias"]
    assert len(Block().parameters()) == 10


def test_train_eval_and_zero_grad_reach_submodules() -> None:
    m = Block()
    m.seq.dropout = nn.Dropout(0.5)
    m.eval()
    assert all(not sub.training for sub in m.modules())
    m.train()
    assert m.seq.dropout.training
    m(Tensor(np.ones((2, 3)))).sum().backward()
    assert m.scale.grad() is not None
    m.zero_grad()
    assert all(p.grad() is None for p in m.parameters())


def test_state_dict_round_trip_and_file(tmp_path) -> None:
    a, b = Block(), Block()
    with ap.no_grad():
        for p in b.parameters():
            p.assign(np.full(p.shape, 0.5))
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).data(), b(x).data())
    path = tmp_path / "block.npz"
    a.save(str(path))
    c = Block()
    with ap.no_grad():
        c.scale.assign([3.0])
    c.load(str(path))
    np.testing.assert_array_equal(a(x).data(), c(x).data())


def test_state_dict_errors_leave_the_model_unchanged() -> None:
    m = Block()
    before = m.state_dict()
    bad = dict(before)
    bad.pop("scale")
    with pytest.raises(ap.StateDictError, match=r"missing keys \['scale'\]"):
        m.load_state_dict(bad)
    wrong = {k: np.zeros(v.shape) for k, v in before.items()}
    wrong["seq.0.weight"] = np.zeros((3, 3))
    with pytest.raises(ap.ShapeError, match=r"seq.0.weight has shape \[3, 3\].*\[2, 2\]"):
        m.load_state_dict(wrong)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    extra = dict(before, ghost=np.zeros(1))
    with pytest.raises(ap.StateDictError, match=r"unexpected keys \['ghost'\]"):
        m.load_state_dict(extra)
    m.load_state_dict(extra, strict=False)


def test_linear_uses_the_seeds_xavier_init_and_layout() -> None:
    layer = nn.Linear(30, 20, rng=0)
    scale = math.sqrt(2.0 / 50)
    w = layer.weight.data()
    assert w.shape == (30, 20) and w.dtype == np.float32
    assert -scale / 2 <= w.min() and w.max() < scale / 2
    expected = (np.random.default_rng(0).random((30, 20)) * scale - scale / 2).astype(np.float32)
    np.testing.assert_array_equal(w, expected)
    assert layer.bias.tolist() == [0.0] * 20
    x = np.ones((2, 30), dtype=np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).data(), x @ w, rtol=1e-6)


def test_activation_modules() -> None:
    x = Tensor([-1.0, 0.5])
    for module, fn in ((nn.ReLU(), lambda t: t.relu()), (nn.Sigmoid(), lambda t: t.sigmoid()),
                       (nn.Tanh(), lambda t: t.tanh()), (nn.GELU(), lambda t: t.gelu()),
                       (nn.LeakyReLU(0.2), lambda t: t.leaky_relu(0.2)),
                       (nn.Softmax(), lambda t: t.softmax())):
        np.testing.assert_array_equal(module(x).data(), fn(x).data())


def test_dropout_is_seeded_scaled_and_off_in_eval() -> None:
    x = Tensor(np.ones((100, 100), dtype=np.float32))
    d1, d2 = nn.Dropout(0.25, rng=3), nn.Dropout(0.25, rng=3)
    y1, y2 = d1(x).data(), d2(x).data()
    np.testing.assert_array_equal(y1, y2)
    assert set(np.unique(y1)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y1 == 0).mean() - 0.25) < 0.02
    d1.eval()
    assert d1(x) is x


def test_layer_norm_matches_numpy_and_gradients() -> None:
    x = np.random.default_rng(0).standard_normal((4, 5))
    ln = nn.LayerNorm(5, dtype=np.float64)
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln(Tensor(x)).data(), expected, rtol=1e-10)
    check_first_order(lambda t: nn.LayerNorm(5, dtype=np.float64)(t), [x])


def test_embedding_gathers_rows_and_accumulates_repeats() -> None:
    emb = nn.Embedding(5, 3, rng=0)
    idx = np.array([[1, 4], [1, 1]])
    out = emb(idx)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.data(), emb.weight.data()[idx])
    out.sum().backward()
    assert emb.weight.grad().data()[:, 0].tolist() == [0, 3, 0, 0, 1]


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_cross_entropy_value_and_exact_gradient() -> None:
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    logits = Tensor(z).requires_grad()
    loss = nn.cross_entropy(logits, y)
    p = _softmax(z)
    assert loss.item() == pytest.approx(-np.log(p[np.arange(6), y]).mean(), rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(logits.grad().data(), (p - np.eye(4)[y]) / 6, rtol=1e-12)


def test_cross_entropy_label_smoothing_and_reductions() -> None:
    rng = np.random.default_rng(2)
    z, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    eps = 0.1
    target = np.eye(3)[y] * (1 - eps) + eps / 3
    logp = np.log(_softmax(z))
    per_row = -(target * logp).sum(1)
    assert nn.cross_entropy(Tensor(z), y, label_smoothing=eps).item() == pytest.approx(
        per_row.mean(), rel=1e-12)
    np.testing.assert_allclose(nn.cross_entropy(Tensor(z), y, reduction="none").data(),
                               -logp[np.arange(5), y], rtol=1e-12)
    logits = Tensor(z).requires_grad()
    nn.CrossEntropyLoss(label_smoothing=eps, reduction="sum")(logits, y).backward()
    np.testing.assert_allclose(logits.grad().data(), _softmax(z) - target, rtol=1e-10)
    check_first_order(lambda t: nn.cross_entropy(t, y, label_smoothing=eps), [z])


def test_losses_with_extreme_logits_have_no_nan() -> None:
    z = Tensor(np.array([[1e4, -1e4, 0.0], [-5e3, 5e3, 1e3]])).requires_grad()
    loss = nn.cross_entropy(z, np.array([1, 1]))
    assert np.isfinite(loss.item())
    loss.backward()
    assert np.isfinite(z.grad().data()).all()
    b = Tensor(np.array([1e4, -1e4, 0.0])).requires_grad()
    bce = nn.binary_cross_entropy_with_logits(b, np.array([0.0, 1.0, 1.0]))
    assert bce.item() == pytest.approx((1e4 + 1e4 + math.log(2)) / 3)
    bce.backward()
    np.testing.assert_allclose(b.grad().data(), np.array([1.0, -1.0, -0.5]) / 3)


def test_bce_nll_mse_l1_against_numpy() -> None:
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal(7), rng.integers(0, 2, 7).astype(np.float64)
    sig = 1 / (1 + np.exp(-x))
    ref = -(t * np.log(sig) + (1 - t) * np.log(1 - sig)).mean()
    assert nn.BCEWithLogitsLoss()(Tensor(x), t).item() == pytest.approx(ref, rel=1e-12)
    check_first_order(lambda v: nn.binary_cross_entropy_with_logits(v, t), [x])
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    assert nn.mse_loss(Tensor(a), b).item() == pytest.approx(((a - b) ** 2).mean(), rel=1e-12)
    assert nn.MSELoss("sum")(Tensor(a), b).item() == pytest.approx(((a - b) ** 2).sum())
    assert nn.l1_loss(Tensor(a), Tensor(b)).item() == pytest.approx(np.abs(a - b).mean())
    assert nn.L1Loss("none")(Tensor(a), b).shape == (3, 2)
    logp = np.log(_softmax(a))
    y = np.array([0, 1, 1])
    assert nn.NLLLoss()(Tensor(logp), y).item() == pytest.approx(
        -logp[np.arange(3), y].mean(), rel=1e-12)
    check_first_order(lambda v: nn.mse_loss(v, b), [a])
    check_first_order(lambda v: nn.l1_loss(v, b), [a])


def test_one_hot_values_dtype_and_range_check() -> None:
    got = nn.one_hot(np.array([[1, 0], [2, 2]]), 3, np.float64)
    np.testing.assert_array_equal(got.data(), np.eye(3)[[[1, 0], [2, 2]]])
    assert got.dtype == np.float64
    with pytest.raises(ap.ShapeError, match=r"one_hot: labels must lie in \[0, 3\)"):
        nn.one_hot(np.array([0, -1]), 3)


def test_loss_errors() -> None:
    with pytest.raises(ap.ShapeError, match=r"cross_entropy: target int64\[3\] does not fit "
                       r"input float64\[2, 3\]: class indices need shape \[2\]"):
        nn.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 1, 2]))
    with pytest.raises(ap.ShapeError, match=r"labels must lie in \[0, 3\)"):
        nn.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 3]))
    with pytest.raises(ap.DTypeError, match="class-index targets must be integers, got float64"):
        nn.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0.0, 1.0]))
    with pytest.raises(ap.ShapeError, match="differ in shape"):
        nn.mse_loss(Tensor(np.zeros(3)), np.zeros(4))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.mse_loss(Tensor(np.zeros(3)), np.zeros(3), reduction="avg")


def test_data_loader_batches_shuffles_per_epoch_and_repeats() -> None:
    x, y = np.arange(10).reshape(10, 1), np.arange(10)
    loader = DataLoader(x, y, batch_size=4, rng=0)
    assert len(loader) == 3
    first = [b[1].tolist() for b in loader]
    second = [b[1].tolist() for b in loader]
    assert sorted(sum(first, [])) == list(range(10)) and first != second
    assert [b[1].tolist() for b in DataLoader(x, y, batch_size=4, rng=0)] == first
    assert [len(b[0]) for b in DataLoader(x, y, batch_size=4, drop_last=True)] == [4, 4]
    ordered = DataLoader(x, y, batch_size=5, shuffle=False)
    assert [b[1].tolist() for b in ordered] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    with pytest.raises(ValueError, match="differ in length"):
        DataLoader(x, y[:3])


def test_seed_style_mlp_trains_with_sgd() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], dtype=np.float32)).astype(np.float32)
    model = nn.MLP(4, 16, 1, rng=0)
    opt = ap.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(200):
        opt.zero_grad()
        loss = nn.mse_loss(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]


def test_load_state_dict_accepts_parameter_tensors() -> None:
    source, target = nn.Linear(2, 3, rng=0), nn.Linear(2, 3, rng=1)
    target.load_state_dict(dict(source.named_parameters()))  # tensors that require grad
    np.testing.assert_array_equal(target.weight.data(), source.weight.data())
    assert target.weight is not source.weight and target.weight.requires_grad_enabled()


def test_load_torch_state_dict_transposes_linear_weights_only() -> None:
    source = nn.TransformerEncoderLayer(8, 2, dim_feedforward=8, dropout=0.0, rng=0,
                                        dtype=np.float64).eval()
    linear = {"self_attn.out_proj.weight", "linear1.weight", "linear2.weight"}
    torch_layout = {k: (v.T if k in linear else v) for k, v in source.state_dict().items()}
    assert torch_layout["linear1.weight"].shape == (8, 8)  # square: a plain load cannot tell
    target = nn.TransformerEncoderLayer(8, 2, dim_feedforward=8, dropout=0.0, rng=1,
                                        dtype=np.float64).eval()
    target.load_torch_state_dict(torch_layout)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8)))
    np.testing.assert_array_equal(target(x).data(), source(x).data())
    np.testing.assert_array_equal(target.self_attn.in_proj_weight.data(),
                                  source.self_attn.in_proj_weight.data())
