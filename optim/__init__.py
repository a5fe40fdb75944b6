"""Optimizers and learning-rate schedules: ``aprender.optim``."""

from .algorithms import SGD, Adam, AdamW, RMSprop
from .optimizer import Optimizer, clip_grad_norm_
from .schedulers import CosineAnnealingLR, LRScheduler, StepLR

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "Optimizer", "RMSprop",
           "StepLR", "clip_grad_norm_"]
