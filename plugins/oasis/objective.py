"""OASIS's training method (reference models/models.py `OASIS_model.forward`, models/losses.py): the U-Net
segmentation discriminator and its N+1-class losses, with LabelMix.

Per step, as the reference's train.py (G first, then D):
- G: fake = G(semantics) with fresh noise; D(fake) (D's weights get no gradient from this loss; the reference
  zeroes D's gradients before D's step) scored as real: `G_adv` = class-balanced cross-entropy of D(fake)
  against the true classes (weighted loss.lambda_gan, the reference's implicit 1), plus `G_VGG` = lambda_vgg *
  VGG(fake, real) when the recipe turns it on (reference --add_vgg_loss; off by default).
- D: a new fake = G(semantics) under no_grad, with new noise and G's updated weights (the reference calls netG
  again); `D_fake` = plain cross-entropy of D(fake) against the "fake" class 0; `D_real` = class-balanced
  cross-entropy of D(real) against the true classes; `D_LabelMix` = lambda_labelmix * MSE(mask * D(real) +
  (1 - mask) * D(fake), D(mask * real + (1 - mask) * fake)), the mask being each class's pixels all 1 or all 0
  (`labelmix_mask`). No output is detached: LabelMix's gradient flows through all three D passes, which run
  one after the other (fake, real, mixed) as in the reference, each a power iteration of D's spectral norms.

Losses (`n1_loss`): targets are 1 + the true class for real, 0 for fake. The class-balancing weight of class c
is B*H*W / (n_present * count_c) (reference `get_class_balancing`: `torch.numel(label) / (num_of_classes *
label.shape[1])`), n_present counting the classes present in the batch other than the don't-care class, whose
weight is 0. A weighted loss is the mean over ALL pixels of weight * cross-entropy (don't-care pixels count in
the denominator with weight 0), the unweighted one (D on fake) a plain mean, don't-care pixels included.

Reference quirk kept (`labelmix_mask`): the reference draws one coin per class present in the batch, in
ascending class order, and writes each draw into the class map in place, so the step of class 1 also catches
the pixels class 0's coin has just set to 1: class 0's pixels, when their coin is 1, take class 1's coin
instead (if class 1 is present). Draws and order follow OASIS's class indices (`OasisOptions.oasis_order`), so
the masks are draw for draw the reference's for the same seed; the mask is shared by the whole batch.

The losses read the one-hot channels of the semantics only (an instance-edge channel, which OASIS never has,
is left out). Of the recipe's [loss] keys, gan_mode is not used (OASIS's loss is a cross-entropy), lambda_feat
must be 0 (no feature matching with this discriminator), lambda_kld has no encoder to act on, and lambda_l1 > 0
adds a pixel L1 term that the reference does not have. Under DDP each rank balances the classes of its own
part of the batch, as each GPU of the reference's DataParallel does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spadekit.plugin import GeneratorContext, SpadekitError, unwrap
from spadekit_plugins.oasis.discriminator import OASISDiscriminator
from spadekit_plugins.oasis.spec import OasisOptions


class OasisMethod:
    """`spadekit.method.Method` of the oasis plugin: its discriminator and `OasisObjective`."""

    def __init__(self, options: OasisOptions, context: GeneratorContext, recipe):
        self.options, self.context, self.recipe = options, context, recipe
        self.ema_stat_batches = options.ema_stat_batches  # `spadekit.method.Method`: reference update_EMA
        loss = recipe.loss
        if loss.lambda_feat > 0:
            raise SpadekitError(
                f"loss.lambda_feat = {loss.lambda_feat}, but OASIS's segmentation discriminator has no feature "
                "matching; set loss.lambda_feat = 0 (the oasis default)."
            )
        options.dontcare_channel(context.space)  # a bad dontcare_class stops the run before anything is built

    def build_discriminator(self) -> OASISDiscriminator:
        return OASISDiscriminator(self.options, self.context)

    def objective(self, g_step: nn.Module, discriminator: nn.Module, vgg: nn.Module | None) -> OasisObjective:
        return OasisObjective(g_step, discriminator, self.options, self.context, self.recipe.loss, vgg)


class OasisObjective:
    """`spadekit.method.Objective`: the losses of one G step and one D step (module docstring)."""

    def __init__(self, g_step: nn.Module, discriminator: nn.Module, options: OasisOptions, context: GeneratorContext,
                 loss, vgg: nn.Module | None):
        self.g_step, self.discriminator = g_step, discriminator
        self.options, self.loss, self.vgg = options, loss, vgg
        self.num_classes = context.space.one_hot_nc
        self.dontcare = options.dontcare_channel(context.space)
        order = torch.tensor(options.oasis_order(context.space))
        self.rank = torch.empty_like(order)  # our channel -> OASIS's class index
        self.rank[order] = torch.arange(len(order))

    @property
    def trains_discriminator(self) -> bool:
        return self.loss.lambda_gan > 0

    def labels(self, semantics: Tensor) -> Tensor:
        """The one-hot channels of the semantics (no instance edges): OASIS's `label`."""
        return semantics[:, : self.num_classes]

    def generator_losses(self, semantics: Tensor, real: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        fake, _, _ = self.g_step(semantics, real)
        losses = {}
        if self.trains_discriminator:
            raw_d = unwrap(self.discriminator)
            raw_d.requires_grad_(False)  # D's weights get no gradient from G's loss
            try:
                output = raw_d(fake)
            finally:
                raw_d.requires_grad_(True)
            adversarial = n1_loss(output, self.labels(semantics), True, self.dontcare, self.options.class_balancing)
            losses["G_adv"] = adversarial * self.loss.lambda_gan
        if self.vgg is not None and self.loss.lambda_vgg > 0:
            losses["G_VGG"] = self.vgg(fake, real) * self.loss.lambda_vgg
        if self.loss.lambda_l1 > 0:
            losses["G_L1"] = F.l1_loss(fake.float(), real.float()) * self.loss.lambda_l1
        return losses, fake

    def discriminator_losses(self, semantics: Tensor, real: Tensor) -> dict[str, Tensor]:
        label, balancing = self.labels(semantics), self.options.class_balancing
        with torch.no_grad():
            fake, _, _ = unwrap(self.g_step)(semantics, real)
        fake = fake.detach()
        output_fake = self.discriminator(fake)
        output_real = self.discriminator(real)
        losses = {
            "D_fake": n1_loss(output_fake, label, False, self.dontcare, balancing),
            "D_real": n1_loss(output_real, label, True, self.dontcare, balancing),
        }
        if self.options.labelmix:
            mask = labelmix_mask(label, self.rank.to(label.device))
            mixed = mask * real + (1 - mask) * fake
            output_mixed = self.discriminator(mixed)
            losses["D_LabelMix"] = self.options.lambda_labelmix * labelmix_loss(
                mask, output_mixed, output_fake, output_real)
        return losses


# ------------------------------------------------------------------------------- the losses, functionally


def class_balancing(label: Tensor, dontcare: int | None) -> Tensor:
    """Reference `get_class_balancing`: B x 1 x H x W weights, class c's B*H*W / (n_present * count_c), the
    don't-care class's 0 (its count also left out of n_present)."""
    occurrence = torch.sum(label, dim=(0, 2, 3))
    if dontcare is not None:
        occurrence[dontcare] = 0
    num_of_classes = (occurrence > 0).sum()
    # the reference's expression, operation for operation (float32 rounding included)
    coefficients = torch.reciprocal(occurrence) * torch.numel(label) / (num_of_classes * label.shape[1])
    if dontcare is not None:
        coefficients[dontcare] = 0
    return coefficients[torch.argmax(label, dim=1, keepdim=True)]


def n1_target(label: Tensor, for_real: bool) -> Tensor:
    """Reference `get_n1_target`: B x H x W class indices of the N+1 output, 1 + the true class for real,
    0 ("fake") for fake."""
    classes = torch.argmax(label, dim=1)
    return classes + 1 if for_real else torch.zeros_like(classes)


def n1_loss(output: Tensor, label: Tensor, for_real: bool, dontcare: int | None, balancing: bool = True) -> Tensor:
    """Reference `losses_computer.loss`: N+1-class cross-entropy of D's logits B x (N+1) x H x W, class-balanced
    (for real targets) and averaged over every pixel."""
    loss = F.cross_entropy(output, n1_target(label, for_real), reduction="none")
    if not for_real:
        return torch.mean(loss)
    if not balancing:  # reference: a weight map of ones
        return torch.mean(loss)
    return torch.mean(loss * class_balancing(label, dontcare)[:, 0])


def labelmix_mask(label: Tensor, rank: Tensor | None = None) -> Tensor:
    """Reference `generate_labelmix`'s mask: B x 1 x H x W floats, every class's pixels (over the whole batch)
    all 1 (real) or all 0 (fake), one `torch.randint(0, 2, (1,))` draw per class present, in ascending order of
    OASIS's class index (`rank`: our channel -> that index; None: our order), each draw written into the class
    map in place as the reference does (module docstring: classes 0 and 1 interact)."""
    target = torch.argmax(label, dim=1, keepdim=True)
    if rank is not None:
        target = rank[target]
    classes = torch.unique(target)  # sorted
    values = classes.clone()  # the current value of each original class's pixels (a table, not the whole map)
    for c in classes:
        values = torch.where(values == c, torch.randint(0, 2, (1,), device=target.device), values)
    return values[torch.searchsorted(classes, target)].float()


def labelmix_loss(mask: Tensor, output_mixed: Tensor, output_fake: Tensor, output_real: Tensor) -> Tensor:
    """Reference `losses_computer.loss_labelmix`: MSE between D's output on the mixed image and the same mix of
    its outputs on the real and the fake image (nothing detached)."""
    mixed = mask * output_real + (1 - mask) * output_fake
    return F.mse_loss(mixed, output_mixed)
