"""PyTorch semantics of the shape methods, einsum, factories, pad/one_hot/embedding: edge cases,
clear errors, compiled index inputs, and the view/reshape bugs. Values are plain numpy (or
written out); op-by-op values and gradients are in tests/cases_shape.py."""

from __future__ import annotations

import numpy as np
import pytest
from differential import Program, run_differential
from gradcheck import check_first_order, check_second_order

import aprender as ap
import aprender.nn.functional as F
from aprender import Tensor, nn, optim
from aprender.errors import DTypeError, GraphError, ShapeError


def _t(shape, seed=0, dtype=np.float64):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


# --- squeeze, unsqueeze, flatten, permute, expand, repeat ---------------------------------------

def test_squeeze_keeps_dims_that_are_not_1_and_checks_range() -> None:
    x = _t((2, 1, 3, 1))
    assert x.squeeze().shape == (2, 3)
    assert x.squeeze(0).shape == (2, 1, 3, 1)  # not size 1: kept, as in PyTorch
    assert x.squeeze(-1).shape == (2, 1, 3)
    assert x.squeeze((1, 3)).shape == (2, 3)
    assert Tensor(np.float64(3.0)).squeeze().shape == ()
    with pytest.raises(ShapeError, match="squeeze: dim 4 is out of range for 4 dimensions"):
        x.squeeze(4)
    with pytest.raises(ShapeError, match="repeat a dimension"):
        x.squeeze((1, -3))


def test_unsqueeze_flatten_and_permute() -> None:
    x = _t((2, 3, 4))
    assert x.unsqueeze(0).shape == (1, 2, 3, 4)
    assert x.unsqueeze(3).shape == (2, 3, 4, 1)
    assert x.unsqueeze(-2).shape == (2, 3, 1, 4)
    with pytest.raises(ShapeError, match="unsqueeze: dim 5 is out of range"):
        x.unsqueeze(5)
    assert x.flatten().shape == (24,)
    assert x.flatten(0, 1).shape == (6, 4)
    assert x.flatten(-2).shape == (2, 12)
    assert Tensor(np.float64(3.0)).flatten().shape == (1,)
    with pytest.raises(ShapeError, match="start_dim 2 comes after end_dim 1"):
        x.flatten(2, 1)
    np.testing.assert_array_equal(x.permute(2, 0, 1).data(), x.data().transpose(2, 0, 1))
    np.testing.assert_array_equal(x.permute([1, 0, 2]).data(), x.data().transpose(1, 0, 2))
    with pytest.raises(ShapeError, match="not a permutation"):
        x.permute(0, 1)
    with pytest.raises(ShapeError, match="repeat a dimension"):
        x.permute(0, 1, 1)


def test_expand_minus_one_keeps_a_size_and_gradient_sums() -> None:
    x = Tensor(np.array([[1.0], [2.0]])).requires_grad()
    y = x.expand(3, -1, 4)
    assert y.shape == (3, 2, 4)
    np.testing.assert_array_equal(y.data()[2, :, 3], [1.0, 2.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad().data(), [[12.0], [12.0]])
    with pytest.raises(ShapeError, match=r"expand: cannot expand \[2, 1\] to \[-1, 2, 1\]"):
        x.expand(-1, 2, 1)  # -1 in a new leading dimension
    with pytest.raises(ShapeError, match="cannot expand"):
        x.expand(3, 4)  # the size-2 dimension cannot grow
    with pytest.raises(ShapeError, match="fewer dimensions"):
        x.expand(2)


def test_repeat_tiles_like_torch_and_checks_sizes() -> None:
    x = Tensor(np.array([[1.0, 2.0]])).requires_grad()
    y = x.repeat(2, 3)
    np.testing.assert_array_equal(y.data(), [[1, 2, 1, 2, 1, 2]] * 2)
    assert x.repeat(2, 1, 1).shape == (2, 1, 2)
    (y * Tensor(np.arange(12.0).reshape(2, 6))).sum().backward()
    # each input element collects the weights of its 6 copies
    np.testing.assert_array_equal(x.grad().data(), [[0 + 2 + 4 + 6 + 8 + 10,
                                                     1 + 3 + 5 + 7 + 9 + 11]])
    with pytest.raises(ShapeError, match="at least as many as the dimensions"):
        x.repeat(2)


# --- flip, roll, split, chunk ------------------------------------------------------------------

def test_flip_is_a_copy_with_its_own_version_counter() -> None:
    w = Tensor(np.arange(4.0)).requires_grad()
    y = w.flip(0)
    np.testing.assert_array_equal(y.data(), [3, 2, 1, 0])
    loss = (y * y).sum()  # mul saves y
    with ap.no_grad():
        w.sub_(Tensor(np.ones(4)))
    loss.backward()  # PyTorch runs this too: flip copied, y was not changed
    np.testing.assert_array_equal(y.data(), [3, 2, 1, 0])
    np.testing.assert_array_equal(w.grad().data(), [0, 2, 4, 6])


def test_roll_without_dims_rolls_the_flat_tensor() -> None:
    x = Tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.roll(1).data(), [[5, 0, 1], [2, 3, 4]])
    np.testing.assert_array_equal(x.roll(-1, 1).data(), [[1, 2, 0], [4, 5, 3]])
    with pytest.raises(ShapeError, match="without dims, shifts must be one number"):
        x.roll((1, 2))
    with pytest.raises(ShapeError, match="differ in length"):
        x.roll((1, 2), 0)


def test_split_and_chunk_follow_torch_sizes() -> None:
    x = Tensor(np.arange(10.0))
    assert [p.shape[0] for p in x.split(4)] == [4, 4, 2]
    assert [p.tolist() for p in x.split([3, 7])] == [[0, 1, 2], [3, 4, 5, 6, 7, 8, 9]]
    assert [p.shape[0] for p in x.chunk(3)] == [4, 4, 2]
    assert [p.shape[0] for p in Tensor(np.zeros(6)).chunk(4)] == [2, 2, 2]  # fewer chunks
    assert [p.shape[0] for p in Tensor(np.zeros(5)).chunk(3)] == [2, 2, 1]
    assert [p.shape for p in Tensor(np.zeros((2, 0))).chunk(3, 1)] == [(2, 0)] * 3
    assert isinstance(x.split(5), tuple) and isinstance(x.chunk(2), tuple)
    with pytest.raises(ShapeError, match=r"sections \[3, 3\] do not add up to 10"):
        x.split([3, 3])
    with pytest.raises(ShapeError, match="chunks must be positive"):
        x.chunk(0)


def test_split_pieces_are_views_that_share_the_version_counter() -> None:
    w = Tensor(np.arange(4.0)).requires_grad()
    a, _ = w.split(2)
    loss = (a * a).sum()
    with ap.no_grad():
        w.add_(1.0)
    with pytest.raises(GraphError, match="changed in place"):
        loss.backward()


# --- masked_fill, tril, triu -------------------------------------------------------------------

def test_masked_fill_gradient_is_zero_where_filled_and_value_tensor_gets_the_rest() -> None:
    x = Tensor(np.arange(4.0)).requires_grad()
    v = Tensor(np.float64(7.0)).requires_grad()
    mask = np.array([True, False, True, False])
    y = x.masked_fill(mask, v)
    np.testing.assert_array_equal(y.data(), [7, 1, 7, 3])
    (y * Tensor(np.array([1.0, 2.0, 3.0, 4.0]))).sum().backward()
    np.testing.assert_array_equal(x.grad().data(), [0, 2, 0, 4])
    assert v.grad().item() == 4.0  # the weights of the filled places


def test_masked_fill_keeps_the_dtype_and_checks_the_mask() -> None:
    ints = Tensor(np.ones((2, 3), dtype=np.int64))
    y = ints.masked_fill(Tensor(np.array(True)), 2.5)
    assert y.dtype == np.int64 and y.tolist() == [[2, 2, 2]] * 2  # as torch: cast to the dtype
    f32 = Tensor(np.zeros(3, np.float32)).masked_fill(np.array([True, False, False]), -np.inf)
    assert f32.dtype == np.float32 and f32.tolist() == [-np.inf, 0, 0]
    with pytest.raises(DTypeError, match="the mask must be bool"):
        ints.masked_fill(np.array([1, 0, 1]), 0.0)
    with pytest.raises(ShapeError, match=r"mask \[2, 1, 3\] does not broadcast to \[2, 3\]"):
        ints.masked_fill(np.ones((2, 1, 3), bool), 0.0)


def test_tril_triu_diagonals_and_errors() -> None:
    x = Tensor(np.ones((3, 4)))
    np.testing.assert_array_equal(x.tril(1).data(), np.tril(np.ones((3, 4)), 1))
    np.testing.assert_array_equal(x.triu(-1).data(), np.triu(np.ones((3, 4)), -1))
    np.testing.assert_array_equal(x.triu().data()[2], [0, 0, 1, 1])
    with pytest.raises(ShapeError, match="tril: needs at least 2 dimensions"):
        Tensor(np.ones(3)).tril()


# --- gather, scatter_add -----------------------------------------------------------------------

def test_gather_values_gradient_with_repeats_and_errors() -> None:
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]])).requires_grad()
    idx = np.array([[0, 0], [1, 0]])
    y = x.gather(1, idx)
    np.testing.assert_array_equal(y.data(), [[1, 1], [4, 3]])  # torch.gather's doc example
    y.sum().backward()
    np.testing.assert_array_equal(x.grad().data(), [[2, 0], [1, 1]])
    with pytest.raises(ShapeError, match="index -1 is out of bounds for dimension 1 with size 2"):
        x.gather(1, np.array([[0, -1], [0, 0]]))  # numpy would wrap; PyTorch refuses
    with pytest.raises(ShapeError, match="index 2 is out of bounds"):
        x.gather(0, np.array([[2, 0]]))
    with pytest.raises(DTypeError, match="gather: index must be an integer tensor"):
        x.gather(1, np.array([[0.0]]))
    with pytest.raises(ShapeError, match="differ in the number of dimensions"):
        x.gather(1, np.array([0, 1]))
    with pytest.raises(ShapeError, match="larger than input"):
        x.gather(1, np.zeros((3, 1), np.int64))


def test_scatter_add_accumulates_repeats_and_checks_dtypes() -> None:
    x = Tensor(np.zeros((2, 3)))
    src = Tensor(np.arange(1.0, 7.0).reshape(2, 3))
    y = x.scatter_add(1, np.array([[0, 0, 2], [1, 1, 1]]), src)
    np.testing.assert_array_equal(y.data(), [[3, 0, 3], [0, 15, 0]])
    assert x.tolist() == [[0.0] * 3] * 2  # a copy: the tensor itself is unchanged
    with pytest.raises(DTypeError, match="src dtype float32 differs"):
        x.scatter_add(1, np.zeros((2, 3), np.int64), Tensor(np.ones((2, 3), np.float32)))


def test_compiled_gather_and_scatter_add_read_new_indices_each_call() -> None:
    def step(x, src, idx):
        out = x.gather(1, idx) + x.scatter_add(1, idx, src)[:, :2]
        out.sum().backward()
        return out

    fast = ap.compile(step)
    rng = np.random.default_rng(0)
    for _ in range(3):
        arrays = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
        idx = rng.integers(0, 4, (3, 2))
        results = []
        for run in (step, fast):
            x, s = (Tensor(a).requires_grad() for a in arrays)
            out = run(x, s, idx)
            results.append((out.data().copy(), x.grad().data().copy(), s.grad().data().copy()))
        for eager, compiled in zip(*results, strict=True):
            np.testing.assert_allclose(compiled, eager, rtol=1e-12)
        scattered = arrays[0].copy()
        np.add.at(scattered, (np.arange(3)[:, None], idx), arrays[1])
        np.testing.assert_allclose(results[1][0], np.take_along_axis(arrays[0], idx, 1)
                                   + scattered[:, :2], rtol=1e-12)
    assert "gather" in fast.ir() and "scatter_add" in fast.ir()


# --- einsum ------------------------------------------------------------------------------------

def test_einsum_accepts_a_list_numpy_operands_and_checks_equations() -> None:
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(ap.einsum("ij,jk->ik", [Tensor(a), b]).data(), a @ b)
    np.testing.assert_allclose(ap.einsum("ij, jk", Tensor(a), Tensor(b)).data(), a @ b)
    with pytest.raises(ShapeError, match="subscript 'j' has sizes 3 and 4"):
        ap.einsum("ij,jk->ik", Tensor(a), Tensor(b.T))
    with pytest.raises(ShapeError, match="names 2 operands, got 1"):
        ap.einsum("ij,jk->ik", Tensor(a))
    with pytest.raises(ShapeError, match="do not fit an operand of shape"):
        ap.einsum("ijk->i", Tensor(a))
    with pytest.raises(ShapeError, match="must be distinct and appear in an input"):
        ap.einsum("ij->iz", Tensor(a))
    with pytest.raises(ShapeError, match="bad subscripts"):
        ap.einsum("i1->i", Tensor(a))


def test_einsum_is_one_op_and_its_gradient_is_einsum() -> None:
    a, b = _t((2, 3, 4)).requires_grad(), _t((2, 4, 5), 1).requires_grad()
    out = ap.einsum("bij,bjk->bik", a, b)
    assert out._node.op.name == "einsum"
    graph = ap.trace(lambda x, y: ap.grad(ap.einsum("bij,bjk->bik", x, y).sum(), [x, y],
                                          create_graph=True), a, b)
    names = [n.op.name for n in graph.nodes]
    assert names.count("einsum") >= 3 and "matmul" not in names, names


def test_einsum_third_order_gradients_and_float32() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3,))
    check_second_order(lambda x, y: ap.einsum("ii,i->i", x, y) ** 2, [a, b])
    x32 = Tensor(a.astype(np.float32))
    y = ap.einsum("ij,jk->ik", x32, x32)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data(), a @ a, rtol=1e-5)


def test_einsum_batched_contraction_equals_matmul() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((8, 64, 64)), rng.standard_normal((8, 64, 64))
    np.testing.assert_allclose(ap.einsum("bij,bjk->bik", Tensor(a), Tensor(b)).data(), a @ b,
                               rtol=1e-12)


# --- concat, stack, cat, eye, linspace ---------------------------------------------------------

def test_concat_stack_take_dim_and_cat_is_concat() -> None:
    a, b = Tensor(np.zeros((2, 3))), Tensor(np.ones((2, 1)))
    assert ap.concat([a, b], dim=1).shape == (2, 4)
    assert ap.concat([a, b], axis=-1).shape == (2, 4)
    assert ap.cat([a, b], 1).shape == (2, 4)
    assert ap.cat((a, a)).shape == (4, 3)
    assert ap.stack([a, a], dim=2).shape == (2, 3, 2)
    assert ap.stack([a, a]).shape == (2, 2, 3)
    with pytest.raises(ShapeError, match="pass one of them"):
        ap.concat([a, b], axis=0, dim=1)


def test_eye_and_linspace() -> None:
    e = ap.eye(3)
    assert e.dtype == np.float32 and e.tolist() == np.eye(3).tolist()
    assert ap.eye(2, 3, dtype=np.float64).tolist() == [[1, 0, 0], [0, 1, 0]]
    assert ap.eye(2, requires_grad=True).requires_grad_enabled()
    s = ap.linspace(-1, 1, 5)
    assert s.dtype == np.float32 and s.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert ap.linspace(0, 1, 1).tolist() == [0.0]
    assert ap.linspace(0, 1, 0).shape == (0,)
    with pytest.raises(ShapeError, match="steps must be non-negative"):
        ap.linspace(0, 1, -1)


# --- pad, one_hot, embedding -------------------------------------------------------------------

def test_pad_order_crop_value_and_errors() -> None:
    x = Tensor(np.arange(6.0).reshape(2, 3)).requires_grad()
    y = F.pad(x, (1, 0, 0, 2), value=-1.0)  # last dimension first: (left, right, top, bottom)
    np.testing.assert_array_equal(y.data(), [[-1, 0, 1, 2], [-1, 3, 4, 5], [-1] * 4, [-1] * 4])
    cropped = F.pad(x, (-1, -1))
    np.testing.assert_array_equal(cropped.data(), [[1], [4]])
    cropped.sum().backward()
    np.testing.assert_array_equal(x.grad().data(), [[0, 1, 0], [0, 1, 0]])
    ints = F.pad(Tensor(np.array([1, 2], dtype=np.int64)), (2, 0), value=7)
    assert ints.dtype == np.int64 and ints.tolist() == [7, 7, 1, 2]
    assert F.pad(x, (-3, 0)).shape == (2, 0)
    with pytest.raises(NotImplementedError, match="mode 'reflect' is not supported"):
        F.pad(x, (1, 1), mode="reflect")
    with pytest.raises(ShapeError, match="even number of widths"):
        F.pad(x, (1,))
    with pytest.raises(ShapeError, match="even number of widths"):
        F.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ShapeError, match="negative size"):
        F.pad(x, (-2, -2))


def test_one_hot_is_int64_infers_classes_and_refuses_inference_when_compiled() -> None:
    y = F.one_hot(np.array([2, 0, 1]))
    assert y.dtype == np.int64 and y.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert F.one_hot(Tensor(np.array([[1], [0]])), 4).shape == (2, 1, 4)
    with pytest.raises(ShapeError, match="labels must lie in"):
        F.one_hot(np.array([0, 5]), 3)
    with pytest.raises(DTypeError, match="indices must be integers"):
        F.one_hot(np.array([0.0, 1.0]))
    with pytest.raises(ShapeError, match="cannot infer num_classes from an empty"):
        F.one_hot(np.zeros(0, np.int64))
    with pytest.raises(GraphError, match="pass num_classes"):
        ap.compile(lambda labels: F.one_hot(labels))(np.array([0, 1]))
    fast = ap.compile(lambda labels: F.one_hot(labels, 3))
    assert fast(np.array([0, 2])).tolist() == [[1, 0, 0], [0, 0, 1]]
    assert fast(np.array([1, 1])).tolist() == [[0, 1, 0], [0, 1, 0]]


def test_embedding_padding_row_gets_no_gradient() -> None:
    w = Tensor(np.arange(8.0).reshape(4, 2)).requires_grad()
    idx = np.array([[0, 2], [2, 3]])
    out = F.embedding(idx, w, padding_idx=2)
    np.testing.assert_array_equal(out.data(), np.arange(8.0).reshape(4, 2)[idx])  # not zeroed
    out.sum().backward()
    np.testing.assert_array_equal(w.grad().data(), [[1, 1], [0, 0], [0, 0], [1, 1]])
    w2 = Tensor(np.ones((4, 2))).requires_grad()
    F.embedding(Tensor(np.array([3, 3, 1])), w2, padding_idx=-1).sum().backward()
    np.testing.assert_array_equal(w2.grad().data()[:, 0], [0, 1, 0, 0])  # -1 is row 3
    with pytest.raises(DTypeError, match="embedding: indices must be integers"):
        F.embedding(np.array([0.5]), w)
    with pytest.raises(ShapeError, match="padding_idx 4 is out of range"):
        F.embedding(idx, w, padding_idx=4)


def test_embedding_layer_init_and_zero_padding_row() -> None:
    emb = nn.Embedding(1000, 16, padding_idx=3, rng=0)
    table = emb.weight.data()
    assert table.dtype == np.float32 and table.shape == (1000, 16)
    assert not table[3].any()
    assert abs(table.mean()) < 0.02 and abs(table.std() - 1.0) < 0.02  # N(0, 1)
    assert repr(emb).startswith("Embedding(1000, 16, padding_idx=3")
    assert nn.Embedding(5, 2, rng=0).padding_idx is None


def test_compiled_embedding_training_equals_eager() -> None:
    def build() -> Program:
        emb = nn.Embedding(6, 3, padding_idx=0, rng=0, dtype=np.float64)
        opt = optim.SGD(emb.parameters(), lr=0.5)

        def step(idx: np.ndarray) -> Tensor:
            opt.zero_grad()
            loss = (emb(idx) ** 2).sum()
            loss.backward()
            opt.step()
            return loss

        def args(i: int) -> tuple[tuple, dict]:
            return (np.random.default_rng(i).integers(0, 6, (4, 2)),), {}

        return Program(step, {"emb": emb, "opt": opt}, args)

    assert run_differential(build, 4) == "equal"


# --- bugs: same-shape reshape, view of non-contiguous, reshape copies ----------------------------

@pytest.mark.parametrize("keep", [lambda h: h.reshape(h.shape), lambda h: h.view(h.shape),
                                  lambda h: h.broadcast_to(h.shape), lambda h: h.reshape(-1, 3),
                                  lambda h: h.expand(-1, -1), lambda h: h.squeeze(),
                                  lambda h: h.flatten(0, 0)])
def test_same_shape_reshape_is_its_own_node(keep) -> None:
    x = Tensor(np.ones((2, 3))).requires_grad()
    h = x * 2.0
    v = keep(h)
    assert v is not h and v.shape == h.shape
    out = (v * 3.0).sum() + (h * 5.0).sum()
    (gv,) = ap.grad(out, [v])
    np.testing.assert_array_equal(gv.data(), np.full((2, 3), 3.0))  # not 8: only v's use


def test_view_of_a_non_contiguous_tensor_raises_and_reshape_copies() -> None:
    x = Tensor(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ShapeError, match=r"view: cannot view \[3, 2\] as \[6\] without copying"
                                         r".*use reshape\(\)"):
        x.T.view(6)
    with pytest.raises(ShapeError, match="use reshape"):
        x.permute(1, 0).view(-1)
    assert x.T.view(3, 2, 1).shape == (3, 2, 1)  # splitting a dimension needs no copy
    assert x.T.reshape(6).tolist() == [0, 3, 1, 4, 2, 5]
    assert x.view(3, 2).tolist() == [[0, 1], [2, 3], [4, 5]]
    assert x[:, ::2].reshape(4).tolist() == [0, 2, 3, 5]


def test_reshape_copy_of_a_non_contiguous_tensor_has_its_own_version_counter() -> None:
    w = Tensor(np.arange(6.0).reshape(2, 3)).requires_grad()
    flat = w.T.reshape(6)  # a copy
    loss = (flat * flat).sum()  # mul saves the copy
    with ap.no_grad():
        w.sub_(Tensor(np.ones((2, 3))))
    loss.backward()  # PyTorch runs this: the copy was not changed
    np.testing.assert_array_equal(w.grad().data(), 2 * np.arange(6.0).reshape(2, 3))
    # a reshape that is a view still shares the counter, so a stale use is caught
    v = Tensor(np.arange(6.0)).requires_grad()
    loss = (v.reshape(2, 3) ** 2).sum()
    with ap.no_grad():
        v.add_(1.0)
    with pytest.raises(GraphError, match="changed in place"):
        loss.backward()


def test_contiguous_returns_self_when_already_contiguous() -> None:
    x = Tensor(np.ones((2, 3)))
    assert x.contiguous() is x
    y = x.T.contiguous()
    assert y is not x and y.data().flags.c_contiguous and y.shape == (3, 2)


def test_shape_methods_gradients_by_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    check_first_order(lambda t: t.permute(1, 2, 0).flatten(1).T.reshape(-1) ** 2, [x])
    check_first_order(lambda t: t.unsqueeze(1).expand(2, 5, 3, 4).repeat(1, 1, 2, 1).sum(1)
                      .flip(-1).roll(1, 0) ** 2, [x])
