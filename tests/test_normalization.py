"""Normalisation (``F.batch_norm``, ``F.layer_norm``, ``BatchNorm1d/2d``, ``LayerNorm``) and
module buffers: PyTorch's values, running statistics, state dicts, compiled == eager.

Values marked "PyTorch" were computed once with torch 2.x (float64) and are hard-coded; the op
cases in ``cases_losses.py`` check the functions against numpy and finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from differential import Program, run_differential

import aprender as ap
from aprender import nn, optim
from aprender.autograd import Tensor
from aprender.nn import functional as F

X1 = np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 4.0]])
X2 = np.array([[-1.0, 2.0], [2.5, 1.0], [0.0, -4.0], [1.0, 1.0]])
Y1 = [[-0.8258161319976312, -0.7345220542983706], [-1.7516322639952622, -0.33363051357459267],
      [2.877448395992893, 0.4681525678729633]]  # PyTorch, either momentum


def _bn1d(momentum: float | None) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(2, momentum=momentum, dtype=np.float64)
    with ap.no_grad():
        bn.weight.assign([2.0, 0.5])
        bn.bias.assign([0.1, -0.2])
    return bn


@pytest.mark.parametrize("momentum,mean,var,eval_out", [
    (0.1, [0.19750000000000004, 0.06], [1.1904166666666667, 2.3833333333333337],
     [[1.5710373959768824, -0.8671813842204771], [0.654503192876021, -0.2194324675015673],
      [5.237174208380328, 1.0760653659362522]]),
    (None, [1.0625, 0.3333333333333333], [1.9895833333333333, 8.333333333333334],
     [[0.011380794017563645, -0.6041449459458432], [-0.6975728538419269, -0.2577349922779776],
      [2.847195385455526, 0.4350849150577536]]),
], ids=["momentum", "cumulative"])
def test_batch_norm_1d_running_statistics_match_pytorch(momentum, mean, var, eval_out) -> None:
    bn = _bn1d(momentum)
    np.testing.assert_allclose(bn(Tensor(X1)).data(), Y1, rtol=1e-13)
    bn(Tensor(X2))
    np.testing.assert_allclose(bn.running_mean.data(), mean, rtol=1e-13)
    np.testing.assert_allclose(bn.running_var.data(), var, rtol=1e-13)
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.item() == 2
    bn.eval()
    np.testing.assert_allclose(bn(Tensor(X1)).data(), eval_out, rtol=1e-13)
    assert bn.num_batches_tracked.item() == 2  # eval tracks nothing


def test_batch_norm_2d_matches_pytorch() -> None:
    x = np.sin(np.arange(24, dtype=np.float64)).reshape(2, 3, 2, 2)
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    y = bn(Tensor(x))
    np.testing.assert_allclose(y.data()[0, 0], [[-0.8617630145540495, 0.836289434932931],
                                                [0.9731602933316672, -0.5769888753573355]],
                               rtol=1e-13)  # PyTorch
    np.testing.assert_allclose(bn.running_mean.data(), [
        0.04270472167964548, -0.03985708143880687, 0.009399932377789681], rtol=1e-13)
    np.testing.assert_allclose(bn.running_var.data(), [
        0.9280640503681654, 0.9332105588606533, 0.9660507541686216], rtol=1e-13)


def test_batch_norm_function_updates_given_statistics_in_place() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 4))
    mean, var = Tensor(np.full(3, 0.5)), Tensor(np.full(3, 2.0))
    held = mean.data()
    F.batch_norm(x, mean, var, training=True, momentum=0.25)
    n = 5 * 4
    np.testing.assert_allclose(held, 0.75 * 0.5 + 0.25 * x.mean(axis=(0, 2)), rtol=1e-14)
    np.testing.assert_allclose(var.data(), 0.75 * 2.0 + 0.25 * x.var(axis=(0, 2)) * n / (n - 1),
                               rtol=1e-14)
    out = F.batch_norm(x, None, None, training=True)  # no statistics to update
    np.testing.assert_allclose(out.data().mean(axis=(0, 2)), 0.0, atol=1e-14)


def test_track_running_stats_false_uses_batch_statistics_always() -> None:
    bn = nn.BatchNorm1d(2, track_running_stats=False, dtype=np.float64)
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    bn.eval()
    out = bn(Tensor(X1)).data()
    np.testing.assert_allclose(out, (X1 - X1.mean(0)) / np.sqrt(X1.var(0) + 1e-5), rtol=1e-13)


def test_affine_false_and_bias_false() -> None:
    bn = nn.BatchNorm1d(2, affine=False, dtype=np.float64)
    assert bn.weight is None and bn.parameters() == []
    assert list(bn.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    assert nn.BatchNorm2d(3, bias=False).bias is None
    ln = nn.LayerNorm(3, elementwise_affine=False)
    assert ln.weight is None and ln.bias is None and ln.parameters() == []
    assert nn.LayerNorm(3, bias=False).bias is None


def test_layer_norm_matches_pytorch() -> None:
    ln = nn.LayerNorm(3, eps=1e-3, dtype=np.float64)
    with ap.no_grad():
        ln.weight.assign([1.0, 2.0, 3.0])
        ln.bias.assign([0.0, 1.0, -1.0])
    np.testing.assert_allclose(ln(Tensor(np.array([[1.0, 2.0, 4.0]]))).data(), [
        [-1.0687015116389473, 0.4656492441805262, 3.007630668646051]], rtol=1e-13)  # PyTorch
    assert repr(ln) == "LayerNorm((3,), eps=0.001, elementwise_affine=True)"
    assert repr(nn.BatchNorm2d(4)) == ("BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, "
                                       "track_running_stats=True)")


# --- buffers ---------------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self) -> None:
        self.fc = nn.Linear(2, 3, rng=0, dtype=np.float64)
        self.bn = nn.BatchNorm1d(3, dtype=np.float64)
        self.register_buffer("steps", Tensor(np.zeros((), np.int64)))
        self.register_buffer("scratch", Tensor(np.zeros(3)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.fc(x))


def test_buffers_are_in_the_state_dict_but_not_parameters() -> None:
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["fc.weight", "fc.bias", "bn.weight",
                                                      "bn.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "bn.running_mean", "bn.running_var", "bn.num_batches_tracked", "steps", "scratch"]
    assert list(net.state_dict()) == [
        "fc.weight", "fc.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
        "bn.num_batches_tracked", "steps"]  # PyTorch's keys; non-persistent buffers are not
    assert net.state_dict()["bn.num_batches_tracked"].dtype == np.int64


def test_load_state_dict_restores_buffers_in_place(tmp_path) -> None:
    a, b = Net(), Net()
    a(Tensor(np.random.default_rng(0).standard_normal((4, 2))))
    running = b.bn.running_mean
    b.load_state_dict(a.state_dict())
    assert b.bn.running_mean is running  # the same tensor, new values
    np.testing.assert_array_equal(running.data(), a.bn.running_mean.data())
    assert b.bn.num_batches_tracked.item() == 1
    path = tmp_path / "net.npz"
    a.save(str(path))
    c = Net()
    c.load(str(path))
    np.testing.assert_array_equal(c.bn.running_var.data(), a.bn.running_var.data())
    bad = a.state_dict()
    bad.pop("bn.running_var")
    with pytest.raises(ap.StateDictError, match=r"missing keys \['bn.running_var'\]"):
        c.load_state_dict(bad)
    bad = dict(a.state_dict(), **{"bn.running_mean": np.zeros(4)})
    with pytest.raises(ap.ShapeError, match=r"bn.running_mean has shape \[4\]"):
        c.load_state_dict(bad)


def test_register_buffer_rejects_bad_arguments() -> None:
    m = nn.Module()
    with pytest.raises(KeyError, match="not a public attribute name"):
        m.register_buffer("_hidden", Tensor([1.0]))
    with pytest.raises(TypeError, match="must be a Tensor or None"):
        m.register_buffer("buf", np.zeros(2))


# --- compiled: running statistics are graph updates ------------------------------------------
class Images(nn.Module):
    """[N, 12] rows as [N, 2, 2, 3] images, scaled per position, batch-normed, classified."""

    def __init__(self, momentum: float | None) -> None:
        self.scale = Tensor(np.linspace(0.5, 1.5, 6).reshape(1, 2, 1, 3)).requires_grad()
        self.bn = nn.BatchNorm2d(2, momentum=momentum, dtype=np.float64)
        self.head = nn.Linear(2 * 2 * 3, 3, rng=1, dtype=np.float64)

    def forward(self, x: Tensor) -> Tensor:
        h = self.bn(x.reshape(-1, 2, 2, 3).mul(self.scale)).relu()
        return self.head(h.reshape(-1, 12))


def _model(kind: str, momentum: float | None) -> nn.Module:
    if kind == "1d":
        return nn.Sequential(nn.Linear(4, 5, rng=0, dtype=np.float64),
                             nn.BatchNorm1d(5, momentum=momentum, dtype=np.float64), nn.ReLU(),
                             nn.Linear(5, 3, rng=1, dtype=np.float64))
    return Images(momentum)


@pytest.mark.parametrize("kind,momentum", [("1d", 0.1), ("1d", None), ("2d", 0.3)])
def test_compiled_training_with_batch_norm_equals_eager(kind: str, momentum: float | None
                                                        ) -> None:
    """Training steps (parameters and running statistics) and eval calls alternate."""
    def build() -> Program:
        model = _model(kind, momentum)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x: np.ndarray, y: np.ndarray) -> Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(model(Tensor(x)), y)
            if model.training:
                loss.backward()
                opt.step()
            return loss

        def args(i: int) -> tuple[tuple, dict]:
            rng = np.random.default_rng(i)
            return (rng.standard_normal((6, 12 if kind == "2d" else 4)),
                    rng.integers(0, 3, 6)), {}

        def between(i: int, s: dict) -> None:
            s["model"].train(i % 3 != 2)

        return Program(step, {"model": model, "opt": opt}, args, between)

    assert run_differential(build, 7) == "equal"


def test_compiled_forward_under_no_grad_updates_statistics() -> None:
    """A forward-only call in training mode (``no_grad``) still moves the statistics."""
    def build() -> Program:
        bn = nn.BatchNorm1d(3, momentum=None, dtype=np.float64)
        return Program(bn, {"bn": bn},
                       lambda i: ((Tensor(np.random.default_rng(i).standard_normal((4, 3))),),
                                  {}),
                       call_context=lambda i: ap.no_grad())

    assert run_differential(build, 4) == "equal"


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("call,error,message", [
    (lambda: nn.BatchNorm1d(2)(Tensor(np.zeros((2, 2, 2, 2), np.float32))), ap.ShapeError,
     r"BatchNorm1d: expected input \[N, C\] or \[N, C, L\] \(2-D or 3-D\), got "
     r"float32\[2, 2, 2, 2\]"),
    (lambda: nn.BatchNorm2d(2)(Tensor(np.zeros((2, 2), np.float32))), ap.ShapeError,
     r"BatchNorm2d: expected input \[N, C, H, W\] \(4-D\), got float32\[2, 2\]"),
    (lambda: nn.BatchNorm1d(3)(Tensor(np.zeros((4, 2), np.float32))), ap.ShapeError,
     r"batch_norm: running_mean float32\[3\] must have shape \[2\] \(one per channel, dim 1 "
     r"of input float32\[4, 2\]\)"),
    (lambda: nn.BatchNorm1d(2)(Tensor(np.zeros((1, 2), np.float32))), ap.ShapeError,
     r"batch_norm: expected more than 1 value per channel when training, got input "
     r"float32\[1, 2\]"),
    (lambda: F.batch_norm(Tensor(np.zeros((3, 2))), None, None), ValueError,
     "running_mean and running_var must be given in evaluation mode"),
    (lambda: F.batch_norm(Tensor(np.zeros((3, 2))), np.zeros(2), np.ones(2), training=True),
     ap.DTypeError, "running_mean must be a Tensor in training"),
    (lambda: F.batch_norm(Tensor(np.zeros(3)), None, None, training=True), ap.ShapeError,
     r"batch_norm: input must be \[N, C, ...\]"),
    (lambda: F.layer_norm(Tensor(np.zeros((4, 3))), (4,)), ap.ShapeError,
     r"layer_norm: normalized_shape \[4\] must be the trailing dimensions of the input "
     r"\(expected input \[\*, 4\]\), got float64\[4, 3\]"),
    (lambda: F.layer_norm(Tensor(np.zeros((4, 3))), 3, weight=np.ones(4)), ap.ShapeError,
     r"layer_norm: weight float64\[4\] must have shape \[3\]"),
    (lambda: F.layer_norm(Tensor(np.zeros((4, 3), np.int64)), 3), ap.DTypeError,
     r"layer_norm: input must be a float tensor, got int64\[4, 3\]"),
])
def test_bad_arguments_raise_clear_errors(call: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_batchnorm_call_that_raises_changes_no_state() -> None:
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ap.ShapeError):
        bn(ap.Tensor(np.ones((1, 3), np.float32)))  # one value per channel in training
    assert int(bn.num_batches_tracked.item()) == 0
    np.testing.assert_array_equal(bn.running_mean.data(), np.zeros(3))
