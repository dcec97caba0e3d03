"""The SPADE objective (Park et al. 2019, Sec. 3 and appendix): GAN, feature-matching and KL losses.

Discriminator outputs follow the multiscale discriminator's layout: a list with one entry per scale,
each a list of feature maps whose last element is the prediction. A single tensor is one scale with
only a prediction. Every loss is computed in float32 with autocast off, so bf16 training stays stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from spadekit.errors import SpadekitError

GAN_MODES = ("hinge", "ls", "original")

DOutputs = Tensor | Sequence[Tensor] | Sequence[Sequence[Tensor]]


@contextmanager
def _float32(device: torch.device):
    """Turn autocast off for `device` so the ops inside run in the dtype they are given (float32). Devices
    without autocast (meta, where perf counts FLOPs) have nothing to turn off."""
    if not torch.amp.is_autocast_available(device.type):
        yield
        return
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def _scales(outputs: DOutputs) -> list[list[Tensor]]:
    """Normalise discriminator outputs to a list (per scale) of lists of feature maps."""
    if isinstance(outputs, Tensor):
        return [[outputs]]
    if not outputs:
        raise ValueError("discriminator outputs are empty")
    if isinstance(outputs[0], Tensor):  # one scale given as its list of feature maps
        return [list(outputs)]
    return [list(scale) for scale in outputs]


def _one_scale(pred: Tensor, target_is_real: bool, for_discriminator: bool, mode: str) -> Tensor:
    """The loss for one scale's prediction map, as in the official GANLoss.loss."""
    if mode == "hinge":
        if not for_discriminator:
            return -pred.mean()
        margin = pred - 1 if target_is_real else -pred - 1
        return -torch.clamp(margin, max=0).mean()
    target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
    if mode == "ls":
        return F.mse_loss(pred, target)
    return F.binary_cross_entropy_with_logits(pred, target)


def gan_loss(outputs: DOutputs, target_is_real: bool, for_discriminator: bool, mode: str = "hinge") -> Tensor:
    """Adversarial loss on the last output of each scale, averaged over scales (official GANLoss)."""
    if mode not in GAN_MODES:
        raise SpadekitError(f"GAN loss mode {mode!r} is unknown; choose one of {', '.join(map(repr, GAN_MODES))}.")
    if not for_discriminator and not target_is_real:
        raise ValueError("the generator loss always targets 'real'; call it with target_is_real=True")
    scales = _scales(outputs)
    with _float32(scales[0][-1].device):
        total = sum(_one_scale(s[-1].float(), target_is_real, for_discriminator, mode) for s in scales)
    return total / len(scales)


def feature_matching_loss(fake_outputs: DOutputs, real_outputs: DOutputs, lambda_feat: float = 10.0) -> Tensor:
    """L1 between D's intermediate features on fake and real (real detached), each weighted lambda_feat/num_D."""
    fake, real = _scales(fake_outputs), _scales(real_outputs)
    if len(fake) != len(real) or any(len(f) != len(r) for f, r in zip(fake, real, strict=True)):
        raise ValueError("fake and real discriminator outputs differ in number of scales or layers")
    weight = lambda_feat / len(fake)
    with _float32(fake[0][-1].device):
        total = fake[0][-1].new_zeros((), dtype=torch.float32)
        for f_scale, r_scale in zip(fake, real, strict=True):
            for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
                total = total + weight * F.l1_loss(f.float(), r.detach().float())
    return total


def kld_loss(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)), summed over batch and dimensions as in the official code."""
    with _float32(mu.device):
        mu, logvar = mu.float(), logvar.float()
        return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Sample z = mu + eps * exp(0.5 * logvar) with eps ~ N(0, 1) (the VAE reparameterisation trick)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + eps * torch.exp(0.5 * logvar)
