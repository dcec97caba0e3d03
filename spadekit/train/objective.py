"""The paper's objective (Section 3 and Appendix A): one generator step and one discriminator step.

G minimizes the hinge GAN loss (weighted lambda_gan), feature matching (lambda_feat), the VGG19 perceptual
loss (lambda_vgg), a pixel L1 loss (lambda_l1, off by default) and, with an image encoder, the KL divergence
of its latent (lambda_kld). D minimizes the hinge loss on real and generated images. D sees the semantics
concatenated with the image, real and fake stacked in one batch, as the official code does. With
lambda_gan = 0 (a regression-trained generator such as CRN) D is never run: `trains_discriminator` is False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spadekit.config import LossSection
from spadekit.method import Objective, unwrap
from spadekit.nn.discriminator import MultiscaleDiscriminator
from spadekit.nn.losses import feature_matching_loss, gan_loss, kld_loss, reparameterize
from spadekit.nn.vgg import VGGLoss


class GeneratorStep(nn.Module):
    """The generator with its optional encoder, as one module for DDP: image -> (mu, logvar) -> z -> fake."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, semantics: Tensor, image: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        mu = logvar = z = None
        if self.generator.encoder is not None and image is not None:
            mu, logvar = self.generator.encoder(image)
            z = reparameterize(mu, logvar)
        return self.generator(semantics, z), mu, logvar


class PaperMethod:
    """The paper's method (`spadekit.method.Method`), the default of every generator plugin without its own:
    the recipe's multi-scale PatchGAN on semantics | image, and `PaperObjective`."""

    def __init__(self, context, recipe):
        self.context, self.recipe = context, recipe

    def build_discriminator(self) -> MultiscaleDiscriminator:
        d = self.recipe.discriminator
        return MultiscaleDiscriminator(self.context.semantic_nc + 3, d.num_D, d.ndf, d.n_layers, d.norm)

    def objective(self, g_step: nn.Module, discriminator: nn.Module, vgg: VGGLoss | None) -> Objective:
        return PaperObjective(g_step, discriminator, self.recipe.loss, vgg)


class PaperObjective:
    """Computes the losses of both steps. `g_step` and `discriminator` may be DDP-wrapped; the raw
    modules are used where no gradient must be synchronized (fake images for the D step, D inside the G step)."""

    def __init__(self, g_step: nn.Module, discriminator: nn.Module, loss: LossSection, vgg: VGGLoss | None):
        self.g_step, self.discriminator = g_step, discriminator
        self.loss, self.vgg = loss, vgg

    @property
    def trains_discriminator(self) -> bool:
        return self.loss.lambda_gan > 0

    def generator_losses(self, semantics: Tensor, real: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        fake, mu, logvar = self.g_step(semantics, real)
        losses = self._adversarial_losses(semantics, fake, real) if self.trains_discriminator else {}
        if self.vgg is not None and self.loss.lambda_vgg > 0:
            losses["G_VGG"] = self.vgg(fake, real) * self.loss.lambda_vgg
        if self.loss.lambda_l1 > 0:
            losses["G_L1"] = F.l1_loss(fake.float(), real.float()) * self.loss.lambda_l1
        if mu is not None and self.loss.lambda_kld > 0:
            losses["KLD"] = kld_loss(mu, logvar) * self.loss.lambda_kld
        return losses, fake

    def _adversarial_losses(self, semantics: Tensor, fake: Tensor, real: Tensor) -> dict[str, Tensor]:
        raw_d = unwrap(self.discriminator)
        raw_d.requires_grad_(False)  # D's weights get no gradient from G's loss
        try:
            pred_fake, pred_real = self._discriminate(raw_d, semantics, fake, real)
        finally:
            raw_d.requires_grad_(True)
        g_gan = gan_loss(pred_fake, True, for_discriminator=False, mode=self.loss.gan_mode)
        losses = {"G_GAN": g_gan * self.loss.lambda_gan}
        if self.loss.lambda_feat > 0:
            losses["G_feat"] = feature_matching_loss(pred_fake, pred_real, self.loss.lambda_feat)
        return losses

    def discriminator_losses(self, semantics: Tensor, real: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            fake, _, _ = unwrap(self.g_step)(semantics, real)
        pred_fake, pred_real = self._discriminate(self.discriminator, semantics, fake.detach(), real)
        return {
            "D_fake": gan_loss(pred_fake, False, for_discriminator=True, mode=self.loss.gan_mode),
            "D_real": gan_loss(pred_real, True, for_discriminator=True, mode=self.loss.gan_mode),
        }

    @staticmethod
    def _discriminate(discriminator: nn.Module, semantics: Tensor, fake: Tensor, real: Tensor):
        """One D pass over [semantics|fake ; semantics|real]; returns (outputs on fake, outputs on real)."""
        batch = torch.cat([torch.cat([semantics, fake], 1), torch.cat([semantics, real], 1)], 0)
        outputs = discriminator(batch)
        n = fake.shape[0]
        return [[o[:n] for o in scale] for scale in outputs], [[o[n:] for o in scale] for scale in outputs]
