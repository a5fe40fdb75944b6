"""Every error path: a clear exception naming op, shapes, dtypes and the user's line, and the
graph and gradients unchanged afterwards."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import aprender as ap
from aprender.autograd import Tensor, no_grad


def _tape_size() -> int:
    """Live nodes on this thread's tape (earlier tests' garbage collected first, so a
    collection during the test cannot change the count)."""
    from aprender.runtime.state import STATE

    gc.collect()
    return len(STATE.tape.nodes())


@pytest.mark.parametrize(("thunk", "exc", "pattern"), [
    (lambda a, b: a + b, ap.ShapeError, r"add: shapes \[2, 3\], \[4\] do not broadcast; "
                                        r"operands float32\[2, 3\], float32\[4\]"),
    (lambda a, b: a.matmul(b), ap.ShapeError, r"matmul: inner dimensions differ.*3 != 4"),
    (lambda a, b: a.view([4, 2]), ap.ShapeError, r"view: cannot view \[2, 3\] \(6 elements\) "
                                                 r"as \[4, 2\]"),
    (lambda a, b: a.reshape(-1, -1), ap.ShapeError, r"reshape: invalid shape"),
    (lambda a, b: a.sum_axis(2), ap.ShapeError, r"sum: axis 2 is out of range"),
    (lambda a, b: a.transpose((0, 0)), ap.ShapeError, r"transpose: axes"),
    (lambda a, b: a.add_broadcast(b), ap.ShapeError, r"add_broadcast: bias must match"),
    (lambda a, b: a[5], ap.ShapeError, r"getitem: .*out of bounds"),
    (lambda a, b: a[1.5], ap.DTypeError, r"getitem: unsupported index"),
    (lambda a, b: ap.concat([a, b], 0), ap.ShapeError, r"concat: .*float32\[2, 3\], "
                                                       r"float32\[4\]"),
    (lambda a, b: ap.stack([a, b], 3), ap.ShapeError, r"stack: axis 3 is out of range"),
    (lambda a, b: a.broadcast_to((3,)), ap.ShapeError, r"broadcast_to: cannot broadcast"),
])
def test_bad_input_raises_clearly_and_records_nothing(thunk, exc, pattern) -> None:
    a = Tensor(np.ones((2, 3), dtype=np.float32)).requires_grad()
    b = Tensor(np.ones(4, dtype=np.float32)).requires_grad()
    before = _tape_size()
    with pytest.raises(exc, match=pattern) as info:
        thunk(a, b)
    assert "test_errors.py" in str(info.value)  # the user's line
    assert isinstance(info.value, ap.AprenderError)
    assert _tape_size() == before
    assert a.grad() is None and b.grad() is None


def test_errors_are_also_builtin_exception_types() -> None:
    with pytest.raises(ValueError):
        Tensor([1.0, 2.0]).view([3])
    with pytest.raises(TypeError):
        Tensor(np.array([1, 2])).requires_grad()


def test_new_with_wrong_size_names_both() -> None:
    with pytest.raises(ValueError, match=r"new: 3 values cannot fill shape \[2, 2\] "
                                         r"\(4 elements\)"):
        Tensor.new([1.0, 2.0, 3.0], [2, 2])


def test_backward_on_non_scalar_without_grad() -> None:
    x = Tensor([1.0, 2.0]).requires_grad()
    y = x * 2
    with pytest.raises(ap.ShapeError, match=r"backward: float32\[2\] has 2 elements; pass grad="):
        y.backward()
    with pytest.raises(ap.ShapeError, match=r"does not match"):
        y.backward(np.ones(3))
    assert x.grad() is None


def test_backward_on_tensor_without_grad() -> None:
    with pytest.raises(ap.GraphError, match="does not require grad"):
        Tensor([1.0]).backward()
    with pytest.raises(ap.GraphError, match="does not require grad"):
        with no_grad():
            y = Tensor([1.0]).requires_grad() * 2
        y.backward()


def test_item_on_non_scalar_and_bool_of_many() -> None:
    with pytest.raises(ap.ShapeError, match=r"item: needs a one-element tensor, got "
                                            r"float32\[2\]"):
        Tensor([1.0, 2.0]).item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(Tensor([1.0, 2.0]))
    assert Tensor([[3.0]]).item() == 3.0 and bool(Tensor([1.0]))


def test_gradient_requested_on_integer_dtype() -> None:
    with pytest.raises(ap.DTypeError, match=r"requires_grad: gradients need a float dtype, got "
                                            r"int64\[2\]"):
        Tensor(np.array([1, 2])).requires_grad()
    t = Tensor(np.array([1.0, 2.0]))
    with pytest.raises(ap.DTypeError, match="float dtype"):
        (t > 1).backward()


def test_backward_after_in_place_change_raises_and_changes_nothing() -> None:
    w = Tensor([1.0, 2.0]).requires_grad()
    x = Tensor([3.0, 4.0]).requires_grad()
    loss = (w * x).sum()
    with no_grad():
        w.sub_(Tensor([0.5, 0.5]))
    with pytest.raises(ap.GraphError, match=r"mul needs input 0 as it was when recorded.*"
                                            r"version 0 -> 1"):
        loss.backward()
    assert w.grad() is None and x.grad() is None
    assert w.tolist() == [0.5, 1.5]


def test_in_place_change_through_a_view_is_detected() -> None:
    w = Tensor([[1.0, 2.0], [3.0, 4.0]]).requires_grad()
    v = w.T
    loss = (v * v).sum()
    with no_grad():
        w.assign(np.zeros((2, 2)))
    with pytest.raises(ap.GraphError, match="changed in place"):
        loss.backward()


def test_in_place_change_of_unread_value_is_fine() -> None:
    w = Tensor([1.0, 2.0]).requires_grad()
    loss = (w + 1.0).sum()  # add's gradient does not read its inputs
    with no_grad():
        w.sub_(1.0)
    loss.backward()
    assert w.grad().tolist() == [1.0, 1.0]


def test_in_place_update_rules() -> None:
    w = Tensor([1.0, 2.0]).requires_grad()
    with pytest.raises(ap.GraphError, match=r"sub_: in-place update of a leaf that requires grad"
                                            r".*no_grad"):
        w.sub_(1.0)
    assert w.tolist() == [1.0, 2.0]
    y = w * 2
    with no_grad(), pytest.raises(ap.GraphError, match=r"computed by a recorded op \(mul\)"):
        y.assign(0.0)
    with no_grad():
        with pytest.raises(ap.ShapeError, match=r"assign: .*float32\[2\]"):
            w.assign(np.ones(3))
        w.sub_(Tensor([0.5, 0.5]), alpha=2.0)
        w.add_(np.array([0.25, 0.25]))
        w.mul_(2.0)
    assert w.tolist() == [0.5, 2.5]
    plain = Tensor([1.0, 1.0])
    plain.assign([3.0, 4.0])  # a leaf without grad can be updated anywhere
    assert plain.tolist() == [3.0, 4.0]


def test_detect_anomaly_names_the_op_forward_and_backward() -> None:
    x = Tensor([0.0, 1.0]).requires_grad()
    with ap.detect_anomaly(), np.errstate(divide="ignore"):
        with pytest.raises(ap.AnomalyError, match=r"log \(forward\) produced inf.*test_errors"):
            x.log()
        y = x.sqrt()  # finite forward; backward divides by 2*sqrt(0)
        with pytest.raises(ap.AnomalyError, match=r"sqrt \(backward\) produced inf"):
            y.sum().backward()
    assert x.grad() is None
    with np.errstate(divide="ignore"):
        assert x.log().data()[0] == -np.inf  # outside the context: numpy's behaviour
