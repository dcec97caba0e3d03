"""tinygen's own training method (`spadekit.plugin.Method`): a one-conv patch discriminator on the image alone,
least-squares GAN losses and a pixel L1 term, in place of the paper's PatchGAN and hinge objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.plugin import conv2d, unwrap


class TinyMethod:
    def build_discriminator(self) -> nn.Module:
        return conv2d(3, 1, 3)

    def objective(self, g_step: nn.Module, discriminator: nn.Module, vgg: nn.Module | None) -> TinyObjective:
        return TinyObjective(g_step, discriminator)


class TinyObjective:
    trains_discriminator = True

    def __init__(self, g_step: nn.Module, discriminator: nn.Module):
        self.g_step, self.discriminator = g_step, discriminator

    def generator_losses(self, semantics: torch.Tensor, real: torch.Tensor):
        fake = self.g_step(semantics, real)[0]
        score = unwrap(self.discriminator)(fake)  # D's weights get gradients here, but its step zeroes them
        return {"G_lsgan": ((score - 1) ** 2).mean(), "G_L1": F.l1_loss(fake, real)}, fake

    def discriminator_losses(self, semantics: torch.Tensor, real: torch.Tensor):
        with torch.no_grad():
            fake = unwrap(self.g_step)(semantics, real)[0]
        return {"D_lsgan": ((self.discriminator(real) - 1) ** 2).mean() + (self.discriminator(fake) ** 2).mean()}
