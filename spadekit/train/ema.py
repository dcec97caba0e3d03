"""Exponential moving average of a model's weights (the generator that bench and synth use)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.method import unwrap


class EMA:
    """A frozen copy of a model whose floating tensors follow the model's as ema = decay*ema + (1-decay)*model."""

    def __init__(self, model: nn.Module):
        self._module = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)
        for param in self._module.parameters():
            param.grad = None  # deepcopy carries gradients along; the average never needs them

    @property
    def module(self) -> nn.Module:
        return self._module

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        """Move every floating parameter and buffer towards the model's; copy integer buffers (step counters)."""
        source = unwrap(model)
        pairs = _matched(self._module.named_parameters(), source.named_parameters())
        pairs += _matched(self._module.named_buffers(), source.named_buffers())
        floating = [(e, m) for e, m in pairs if e.is_floating_point()]
        if floating:
            averages, currents = zip(*floating, strict=True)
            torch._foreach_lerp_(list(averages), list(currents), 1.0 - decay)
        for average, current in pairs:
            if not average.is_floating_point():
                average.copy_(current)
        refresh_spectral_norms(self._module)

    def state_dict(self) -> dict:
        return self._module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._module.load_state_dict(state)


def _matched(averages, currents) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pair tensors by name (parametrized modules such as spectral norm keep their names through deepcopy)."""
    current = dict(currents)
    return [(tensor, current[name]) for name, tensor in averages]


@torch.no_grad()
def refresh_spectral_norms(model: nn.Module, iterations: int = 1) -> None:
    """Power-iterate every spectral norm's u and v on the module's own (averaged) weight.

    An average of unit vectors is shorter than one, so averaged u and v underestimate sigma = u^T W v; in eval
    mode (no power iteration) every layer then comes out too large, and the error compounds through the
    network (a toyscapes EMA generator saturated to black after 200 steps). A power iteration from the
    averaged vectors restores unit length and follows the averaged weight, as training follows its own.
    """
    for module in model.modules():
        for norm in getattr(getattr(module, "parametrizations", None), "weight", []):
            if hasattr(norm, "_u") and hasattr(norm, "_v"):  # torch's spectral-norm parametrization
                _power_iteration(norm, module.parametrizations.weight.original, iterations)


def _power_iteration(norm: nn.Module, weight: torch.Tensor, iterations: int) -> None:
    matrix = weight.movedim(norm.dim, 0).flatten(1)
    for _ in range(iterations):
        norm._u.copy_(F.normalize(matrix @ norm._v, dim=0, eps=norm.eps))
        norm._v.copy_(F.normalize(matrix.T @ norm._u, dim=0, eps=norm.eps))
