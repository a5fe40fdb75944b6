"""SGD, Adam, AdamW and RMSprop with PyTorch's documented update rules and defaults."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..runtime import Tensor, where, zeros_like
from .optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

    hyper = ("momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and zero dampening")
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.counts_steps = bool(momentum and dampening)  # only the first step differs
        super().__init__(params, lr)

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        state = super()._init_state(p)
        if self.momentum:
            state["momentum_buffer"] = zeros_like(p)
        return state

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Tensor], lr: Tensor) -> None:
        d_p = grad.add(p.mul(self.weight_decay)) if self.weight_decay else grad
        if self.momentum:
            buf = state["momentum_buffer"]
            if self.dampening:  # the first step copies the gradient, as PyTorch does
                first = state["step"].eq(1.0)
                buf.assign(where(first, d_p, buf.mul(self.momentum).add(
                    d_p.mul(1.0 - self.dampening))))
            else:
                buf.mul_(self.momentum).add_(d_p)
            d_p = d_p.add(buf.mul(self.momentum)) if self.nesterov else buf
        p.sub_(d_p, alpha=lr)


def _bias_corrections(step: Tensor, beta1: float, beta2: float,
                      dtype: np.dtype) -> tuple[Tensor, Tensor]:
    """``1 - beta1**t`` and ``sqrt(1 - beta2**t)`` as 0-d tensors of ``dtype``."""
    bc1 = (1.0 - beta1 ** step).astype(dtype)
    bc2_sqrt = (1.0 - beta2 ** step).sqrt().astype(dtype)
    return bc1, bc2_sqrt


class Adam(Optimizer):
    """Adam (Kingma & Ba), with optional L2 weight decay and AMSGrad."""

    hyper = ("betas", "eps", "weight_decay", "amsgrad")
    decoupled = False
    counts_steps = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        self.betas, self.eps = tuple(betas), eps
        self.weight_decay, self.amsgrad = weight_decay, amsgrad
        super().__init__(params, lr)

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        state = super()._init_state(p)
        state["exp_avg"] = zeros_like(p)
        state["exp_avg_sq"] = zeros_like(p)
        if self.amsgrad:
            state["max_exp_avg_sq"] = zeros_like(p)
        return state

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Tensor], lr: Tensor) -> None:
        beta1, beta2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p.mul_(lr.mul(self.weight_decay).neg().add(1.0))
            else:
                grad = grad.add(p.mul(self.weight_decay))
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(grad.mul(1.0 - beta1))
        v.mul_(beta2).add_(grad.mul(grad).mul(1.0 - beta2))
        bc1, bc2_sqrt = _bias_corrections(state["step"], beta1, beta2, p.dtype)
        if self.amsgrad:
            vmax = state["max_exp_avg_sq"]
            vmax.assign(vmax.maximum(v))
            v = vmax
        denom = v.sqrt().div(bc2_sqrt).add(self.eps)
        p.sub_(m.div(denom), alpha=lr.div(bc1))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd`` first."""

    decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop with optional momentum, centering and weight decay."""

    hyper = ("alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered
        super().__init__(params, lr)

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        state = super()._init_state(p)
        state["square_avg"] = zeros_like(p)
        if self.momentum:
            state["momentum_buffer"] = zeros_like(p)
        if self.centered:
            state["grad_avg"] = zeros_like(p)
        return state

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Tensor], lr: Tensor) -> None:
        if self.weight_decay:
            grad = grad.add(p.mul(self.weight_decay))
        sq = state["square_avg"]
        sq.mul_(self.alpha).add_(grad.mul(grad).mul(1.0 - self.alpha))
        if self.centered:
            ga = state["grad_avg"]
            ga.mul_(self.alpha).add_(grad.mul(1.0 - self.alpha))
            avg = sq.sub(ga.mul(ga)).sqrt().add(self.eps)
        else:
            avg = sq.sqrt().add(self.eps)
        if self.momentum:
            buf = state["momentum_buffer"]
            buf.mul_(self.momentum).add_(grad.div(avg))
            p.sub_(buf, alpha=lr)
        else:
            p.sub_(grad.div(avg), alpha=lr)
