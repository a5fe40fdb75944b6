"""``Optimizer``: parameters, tensor-held state and learning rate, state dicts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import DTypeError, ShapeError, StateDictError, with_location
from ..runtime import Tensor, no_grad
from ..runtime.tensor import set_grad


class Optimizer:
    """Base class: subclasses define ``_init_state(p)`` and ``_update(p, grad, state)``.

    All state lives in tensors so a compiled step can take it as input: each parameter's
    buffers and step count (``self.state[i]``), and the learning rate, a 0-d float64 tensor
    behind the ``lr`` property (``opt.lr = 0.01`` writes into it in place).
    """

    #: hyper-parameters saved in ``state_dict`` besides ``lr``
    hyper: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Tensor) or not p.is_leaf() or not p.requires_grad_enabled():
                raise DTypeError(with_location(
                    f"{type(self).__name__}: parameters must be leaf tensors that require grad"))
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr}")
        self._lr = Tensor(np.array(lr, dtype=np.float64))
        self.state: list[dict[str, Tensor]] = [self._init_state(p) for p in self.params]

    @property
    def lr(self) -> float:
        return float(self._lr.data())

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr.assign(value)

    #: whether the update reads a per-parameter step count (``state["step"]``)
    counts_steps = False

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        return {"step": Tensor(np.array(0.0))} if self.counts_steps else {}

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Tensor], lr: Tensor) -> None:
        """Update ``p`` in place; ``lr`` is the learning rate as a 0-d tensor of its dtype."""
        raise NotImplementedError

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        lrs: dict[np.dtype, Tensor] = {}  # the learning rate cast once per dtype and step
        with no_grad():
            for p, state in zip(self.params, self.state, strict=True):
                grad = p.grad()
                if grad is not None:
                    if self.counts_steps:
                        state["step"].add_(1.0)
                    lr = lrs.get(p.dtype)
                    if lr is None:
                        lr = lrs[p.dtype] = self._lr.astype(p.dtype)
                    self._update(p, grad, state, lr)

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to None."""
        for p in self.params:
            set_grad(p, None)

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters and a copy of every state tensor, as numpy arrays."""
        return {"hyper": {"lr": self.lr, **{k: getattr(self, k) for k in self.hyper}},
                "state": [{k: np.array(v.data()) for k, v in s.items()} for s in self.state]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; checks everything before changing anything."""
        states = state_dict.get("state")
        if states is None or len(states) != len(self.state):
            raise StateDictError(f"{type(self).__name__}.load_state_dict: expected state for "
                                 f"{len(self.state)} parameters")
        for i, (mine, theirs) in enumerate(zip(self.state, states, strict=True)):
            if set(mine) != set(theirs):
                raise StateDictError(f"{type(self).__name__}.load_state_dict: parameter {i} "
                                     f"has state {sorted(theirs)}, expected {sorted(mine)}")
            for k, v in theirs.items():
                if np.shape(v) != mine[k].shape:
                    raise ShapeError(f"{type(self).__name__}.load_state_dict: state {k!r} of "
                                     f"parameter {i} has shape {list(np.shape(v))}, expected "
                                     f"{list(mine[k].shape)}")
        with no_grad():
            for mine, theirs in zip(self.state, states, strict=True):
                for k, v in theirs.items():
                    mine[k].assign(v)
        hyper = state_dict.get("hyper", {})
        if "lr" in hyper:
            self.lr = hyper["lr"]
        for k in self.hyper:
            if k in hyper:
                setattr(self, k, hyper[k])


def clip_grad_norm_(params: Iterable[Tensor], max_norm: float, eps: float = 1e-6) -> Tensor:
    """Scale the gradients in place so their global 2-norm is at most ``max_norm``, as PyTorch
    does (``coef = min(1, max_norm / (norm + eps))``, always applied); returns the norm."""
    grads = [p.grad() for p in params if p.grad() is not None]
    if not grads:
        return Tensor(np.array(0.0, dtype=np.float32))
    with no_grad():
        total = None
        for g in grads:
            sq = g.astype(np.float64).pow(2.0).sum()
            total = sq if total is None else total.add(sq)
        norm = total.sqrt()
        coef = norm.add(eps).pow(-1.0).mul(max_norm).clip(None, 1.0)
        for g in grads:
            g.mul_(coef.astype(g.dtype))
    return norm
