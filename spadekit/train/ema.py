"""Exponential moving average of a model's weights (the generator that bench and synth use)."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.device import autocast
from spadekit.method import unwrap


class EMA:
    """A frozen copy of a model whose floating tensors follow the model's as ema = decay*ema + (1-decay)*model."""

    def __init__(self, model: nn.Module):
        self._module = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)
        for param in self._module.parameters():
            param.grad = None  # deepcopy carries gradients along; the average never needs them
        # the buffers' averages while `recompute_batch_stats`' values are in the module (None: they are in it)
        self._averaged_buffers: dict[str, torch.Tensor] | None = None

    @property
    def module(self) -> nn.Module:
        return self._module

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        """Move every floating parameter and buffer towards the model's; copy integer buffers (step counters)."""
        self._restore_averaged_buffers()
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

    @torch.no_grad()
    def recompute_batch_stats(self, semantics_batches: Iterable[torch.Tensor], precision: str,
                              device: torch.device) -> None:
        """Run the averaged generator in train mode on these label maps (its latents drawn as in training), so
        that its batch norms' running statistics follow its own activations (OASIS's update_EMA); spectral norms
        power-iterate on the way, as in any training-mode forward.

        The module keeps these buffers (samples, checkpoints and everything that reads them use them) until the
        next `update`, which first puts the averages back: the average itself never sees the pass, so a run
        stopped and resumed at any step averages exactly as one that was not. (OASIS keeps the pass's values
        and averages on from them; after its 51 batches at momentum 0.1 they hold 0.9^51 = 0.5% of the
        average they started from, which is the whole difference.)"""
        self._restore_averaged_buffers()
        self._averaged_buffers = {name: buffer.clone() for name, buffer in self._module.named_buffers()}
        self._module.train()
        try:
            for semantics in semantics_batches:
                with autocast(precision, device):
                    self._module(semantics)
        finally:
            self._module.eval()

    def state_dict(self) -> dict:
        """The EMA generator as it is used now (a plain generator state dict)."""
        return self._module.state_dict()

    def averaged_buffers(self) -> dict[str, torch.Tensor] | None:
        """The buffers' averages while `recompute_batch_stats`' values are in the module, else None."""
        return self._averaged_buffers

    def load_state_dict(self, state: dict, averaged_buffers: dict[str, torch.Tensor] | None = None) -> None:
        self._module.load_state_dict(state)
        self._averaged_buffers = None if averaged_buffers is None else dict(averaged_buffers)

    @torch.no_grad()
    def _restore_averaged_buffers(self) -> None:
        if self._averaged_buffers is None:
            return
        for name, buffer in self._module.named_buffers():
            buffer.copy_(self._averaged_buffers[name])
        self._averaged_buffers = None


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
