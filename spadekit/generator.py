"""The generator plugin contract: what a `spadekit.generators` factory receives and must return.

A generator plugin's spec (see `spadekit.registry.PluginSpec`) has an options model (the recipe's
`[model]` section) and a factory called as `factory(options, context=GeneratorContext(...))`. The
factory returns an `nn.Module` that is a `Generator` (the Protocol below; `build_generator` checks it).

The dataset facts come from the shards (never from the recipe), so a plugin never repeats them.

Default losses: a generator that is not trained with the recipe defaults (the paper's GAN objective) says
so with a `default_loss` class variable on its options model, a dict of `[loss]` keys and values, e.g. CRN's
`{"lambda_gan": 0.0, "lambda_feat": 0.0}` (regression only). These sit between spadekit's defaults and the
recipe: a recipe's [loss] section, SPADEKIT_LOSS__* and `--set loss.*` override them. With `lambda_gan = 0`
the trainer runs no discriminator step at all.

Parameter counts: `parameter_count` builds a generator on the meta device (`build_on_meta`: nothing is
allocated; a plugin should build there, so it must not compute with its weights in `__init__`) and counts
it without its image encoder. `PAPER_CONTEXTS` are the paper's label spaces at 256x256, for counts
comparable with its tables (`spadekit plugins --json` reports them).

Compute: `generator_macs` counts the multiply-accumulates of one forward (batch 1, the context's image size)
with torch's FlopCounterMode on the meta device: the convolutions, linear layers and matrix products (FLOPs / 2);
elementwise work (norms, activations, modulation, lookups) is not counted, as the papers' GMAC figures do not
count it. A plugin whose forward cannot run on the meta device has no count there.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn.utils import parametrizations

from spadekit import registry
from spadekit.errors import SpadekitError
from spadekit.nn.semantics import LabelSpace


@dataclass(frozen=True)
class GeneratorContext:
    """The dataset facts and image geometry a generator is built for."""

    space: LabelSpace
    crop_size: int  # output width in pixels
    aspect_ratio: float = 1.0  # width / height

    @property
    def semantic_nc(self) -> int:
        return self.space.semantic_nc

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the generated images."""
        return round(self.crop_size / self.aspect_ratio), self.crop_size


@runtime_checkable
class Generator(Protocol):
    """What the trainer, inference and the benchmark use of a generator (an nn.Module besides)."""

    # maps images in [-1, 1] of any size to (mu, logvar), B x z_dim each; None: no latent from images
    encoder: nn.Module | None
    z_dim: int | None  # the latent size; None when forward takes no z

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Semantics B x semantic_nc x H x W (see spadekit.nn.semantics) -> images B x 3 x H x W in [-1, 1],
        H, W the context's image size."""
        ...


GENERATOR_MEMBERS = ("encoder", "z_dim", "forward")  # Generator's members, for the error message


def build_generator(name: str, options: dict[str, Any], context: GeneratorContext) -> nn.Module:
    """Build the named generator plugin for `context`; an nn.Module that is a `Generator`, or a SpadekitError."""
    generator = registry.get("generators", name).build(options, context=context)
    if not (isinstance(generator, nn.Module) and isinstance(generator, Generator)):
        missing = [member for member in GENERATOR_MEMBERS if not hasattr(generator, member)]
        if not isinstance(generator, nn.Module):
            missing.insert(0, "nn.Module")
        raise SpadekitError(
            f"Generator plugin {name!r} returned {type(generator).__name__} without {', '.join(missing)}; "
            "a generator must be an nn.Module with `encoder` and `z_dim` attributes (see spadekit.generator)."
        )
    return generator


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_generator_parameters(generator: nn.Module) -> int:
    """The generator's parameters without its image encoder's (as the paper counts them)."""
    encoder = count_parameters(generator.encoder) if getattr(generator, "encoder", None) is not None else 0
    return count_parameters(generator) - encoder


# The paper's label spaces (official `semantic_nc`) at 256x256. Its Table 3 counts are ADE20K's: the SPADE
# generator has 96.49M parameters there ("96M") and 97.48M at COCO-Stuff.
PAPER_CONTEXTS = {
    "coco-stuff": GeneratorContext(LabelSpace(182, dontcare=True, use_instance=True), 256),  # 184 channels
    "ade20k": GeneratorContext(LabelSpace(150, dontcare=True, use_instance=False), 256),  # 151 channels
}


def build_on_meta(name: str, options: dict[str, Any], context: GeneratorContext) -> nn.Module:
    """The named generator built on the meta device: shapes only, nothing allocated; for counting."""
    with _meta_device():
        return build_generator(name, options, context)


def parameter_count(name: str, options: dict[str, Any], context: GeneratorContext) -> int:
    """The named generator's parameters (without its encoder), counted without allocating them."""
    return count_generator_parameters(build_on_meta(name, options, context))


def generator_macs(name: str, options: dict[str, Any], context: GeneratorContext) -> int:
    """Multiply-accumulates of one forward of the named generator at batch 1 (see the module docstring)."""
    return forward_macs(build_on_meta(name, options, context), context)


def forward_macs(generator: nn.Module, context: GeneratorContext) -> int:
    """Multiply-accumulates of one forward (batch 1, zero semantics, the prior's latent) of a generator built
    on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    height, width = context.image_size
    semantics = torch.zeros(1, context.semantic_nc, height, width, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        generator.eval()(semantics)
    return counter.get_total_flops() // 2


@contextlib.contextmanager
def _meta_device():
    """torch.device("meta"), with spectral norm's 15 power iterations at construction skipped: on meta
    tensors they compute nothing, but their Python meta kernels take seconds for a large generator."""
    spectral = getattr(parametrizations, "_SpectralNorm", None)
    power_method = getattr(spectral, "_power_method", None)
    if power_method is not None:
        spectral._power_method = lambda self, weight_mat, n_power_iterations: None
    try:
        with torch.device("meta"):
            yield
    finally:
        if power_method is not None:
            spectral._power_method = power_method
