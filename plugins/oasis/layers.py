"""Spectral norm as the reference computes it in training.

OASIS (like NVlabs/SPADE) uses the older `torch.nn.utils.spectral_norm` hook, whose power iteration per
training forward updates v first and then u: v = normalize(W^T u), u = normalize(W v), sigma = u^T W v. torch's
parametrization (`torch.nn.utils.parametrizations.spectral_norm`, which spadekit's `spectral_norm` uses) updates
u first (u = normalize(W v), v = normalize(W^T u)), which gives another sigma from the same stored u and v. Both
divide by the stored u^T W v in eval mode. `reference_spectral_norm` is the parametrization with the hook's
order, so a network loaded from reference weights computes the reference's training forward too, power
iteration included; its state-dict keys are the parametrization's (`X.parametrizations.weight.original`,
`.0._u`, `.0._v`), which `spadekit import` maps from the hook's `X.weight_orig / weight_u / weight_v`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from spadekit.plugin import conv2d


class ReferenceSpectralNorm(parametrizations._SpectralNorm):
    """torch's spectral-norm parametrization with the reference hook's power-iteration order (v, then u).
    On meta tensors (parameter counts) the 15 iterations at construction are skipped: they compute nothing."""

    @torch.no_grad()
    def _power_method(self, weight_mat: torch.Tensor, n_power_iterations: int) -> None:
        if weight_mat.is_meta:
            return
        for _ in range(n_power_iterations):  # in place (out=), as torch's: DataParallel replicas share the buffers
            self._v = F.normalize(torch.mv(weight_mat.t(), self._u), dim=0, eps=self.eps, out=self._v)
            self._u = F.normalize(torch.mv(weight_mat, self._v), dim=0, eps=self.eps, out=self._u)


def reference_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral norm on `module.weight` (one power iteration per training forward, eps 1e-12, dim 0)."""
    parametrize.register_parametrization(module, "weight", ReferenceSpectralNorm(module.weight))
    return module


def conv(cin: int, cout: int, kernel_size: int, bias: bool = True, spectral: bool = False) -> nn.Conv2d:
    """A 'same'-padded conv initialized as the reference's `init_networks` (xavier normal, gain 0.02; zero
    bias), with the reference's spectral norm when `spectral`."""
    layer = conv2d(cin, cout, kernel_size, bias=bias)
    return reference_spectral_norm(layer) if spectral else layer
