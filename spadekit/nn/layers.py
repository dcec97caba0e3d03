"""Convolution and linear layers initialized as the official code does, with optional spectral norm.

Official `init_type='xavier'`, `init_variance=0.02`: `xavier_normal_(gain=0.02)` on every weight, zero biases.
Spectral norm (Miyato et al. 2018) uses `torch.nn.utils.parametrizations.spectral_norm`; in eval mode it
divides by the stored estimate `u^T W v` without a power iteration, as the official (older) one does.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

INIT_GAIN = 0.02


def init_xavier(layer: nn.Module, gain: float = INIT_GAIN) -> nn.Module:
    nn.init.xavier_normal_(layer.weight, gain=gain)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


def spectral_norm(layer: nn.Module) -> nn.Module:
    """Spectral norm on `layer.weight`; apply after initializing the weight so u and v match it."""
    return parametrizations.spectral_norm(layer)


def conv2d(cin: int, cout: int, kernel_size: int, stride: int = 1, padding: int | None = None,
           bias: bool = True, spectral: bool = False) -> nn.Conv2d:
    """A Conv2d with official init; `padding` defaults to 'same' for odd kernels (kernel_size // 2)."""
    padding = kernel_size // 2 if padding is None else padding
    layer = init_xavier(nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=bias))
    return spectral_norm(layer) if spectral else layer


def linear(fin: int, fout: int, spectral: bool = False) -> nn.Linear:
    layer = init_xavier(nn.Linear(fin, fout))
    return spectral_norm(layer) if spectral else layer


def has_spectral_norm(layer: nn.Module) -> bool:
    return parametrize.is_parametrized(layer, "weight")


@torch.no_grad()
def fold_spectral_norm(model: nn.Module) -> nn.Module:
    """Replace every spectral-normed weight by the plain tensor W / sigma it stands for (inference only:
    the model must be in eval mode, so that sigma is the stored estimate and not a new power iteration)."""
    if model.training:
        raise ValueError("fold_spectral_norm needs a model in eval mode")
    for module in model.modules():
        if has_spectral_norm(module):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


# Official `torch.nn.utils.spectral_norm` state-dict suffixes -> the parametrization's names.
OFFICIAL_SPECTRAL_KEYS = {
    "weight_orig": "parametrizations.weight.original",
    "weight_u": "parametrizations.weight.0._u",
    "weight_v": "parametrizations.weight.0._v",
}
