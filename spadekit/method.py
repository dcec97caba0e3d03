"""The training-method contract: a generator plugin may bring its own discriminator and objective.

By default a generator trains with the paper's method (`spadekit.train.objective.PaperMethod`): the multi-scale
PatchGAN of the recipe's [discriminator] section, hinge GAN, feature matching, VGG and KL losses. A plugin that
trains differently (OASIS: a segmentation discriminator and class-balanced losses) gives its spec a `method`
factory, called as `method(options, context=GeneratorContext, recipe=Recipe)`, that returns a `Method`. The trainer
owns everything else and keeps it for every method: data, optimizers and their schedules, EMA, DDP, precision, the
NaN guard, logging, samples, checkpoints and resume.

The trainer calls, in order: `build_discriminator()` once (the module is moved to the device, wrapped in DDP when
distributed, optimized with [optim] lr_D and checkpointed under "discriminator"), then `objective(g_step,
discriminator, vgg)` once, then per step `generator_losses` (summed and back-propagated into G) and, when
`trains_discriminator`, `discriminator_losses` (summed into D). `g_step` is the generator wrapped with its encoder
(`spadekit.train.objective.GeneratorStep`: `g_step(semantics, image)` -> fake, mu, logvar); both may be DDP-wrapped,
so an objective reaches the raw modules with `unwrap`.

A method may also set `ema_stat_batches` (an int; absent or 0: nothing). Before the trainer uses or saves the EMA
generator (sample grids, checkpoints), it then runs the EMA generator in train mode, without gradients, on that
many training batches, so that its batch-norm statistics are its own rather than the average of the trained
generator's (OASIS's `update_EMA`; the batches, their crops and the latents come from generators seeded by the
step, so training and an exact resume are unaffected).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class Objective(Protocol):
    """The losses of one training step, each a scalar tensor, by name (names appear in the logs)."""

    trains_discriminator: bool  # False: the trainer runs no discriminator step

    def generator_losses(self, semantics: Tensor, real: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """-> (losses for G, the fake images of this step)."""
        ...

    def discriminator_losses(self, semantics: Tensor, real: Tensor) -> dict[str, Tensor]:
        ...


@runtime_checkable
class Method(Protocol):
    def build_discriminator(self) -> nn.Module:
        ...

    def objective(self, g_step: nn.Module, discriminator: nn.Module, vgg: nn.Module | None) -> Objective:
        ...


def ema_stat_batches(method: Method) -> int:
    """How many training batches refresh the EMA generator's batch-norm statistics (see the module docstring)."""
    return int(getattr(method, "ema_stat_batches", 0) or 0)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel and torch.compile wrappers; the model itself otherwise."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return unwrap(model.module)
    compiled = getattr(model, "_orig_mod", None)  # torch.compile keeps the original module here
    return unwrap(compiled) if isinstance(compiled, nn.Module) else model
