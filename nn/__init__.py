"""Layers, containers and losses: ``aprender.nn``."""

from .layers import (
    GELU,
    MLP,
    Dropout,
    Embedding,
    LayerNorm,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
    one_hot,
)
from .module import Module, ModuleList, Sequential

__all__ = ["GELU", "MLP", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Embedding",
           "L1Loss", "LayerNorm", "LeakyReLU", "Linear", "MSELoss", "Module", "ModuleList",
           "NLLLoss", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh",
           "binary_cross_entropy_with_logits", "cross_entropy", "l1_loss", "mse_loss",
           "nll_loss", "one_hot"]
