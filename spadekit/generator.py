"""The generator plugin contract: what a `spadekit.generators` factory receives and must return.

A generator plugin's spec (see `spadekit.registry.PluginSpec`) has an options model (the recipe's
`[model]` section) and a factory called as `factory(options, context=GeneratorContext(...))`. The
factory returns an `nn.Module` that:

- maps semantics (B x semantic_nc x H x W, see `spadekit.nn.semantics`) to images in [-1, 1]:
  `forward(semantics, z=None) -> B x 3 x H x W`, where H, W are the context's image size;
- has an `encoder` attribute: an `nn.Module` mapping images in [-1, 1] of any size to `(mu, logvar)`
  (B x z_dim each), or None when the generator takes no latent from images; and a `z_dim` attribute
  (the latent size, or None when `forward` takes no z).

The dataset facts come from the shards (never from the recipe), so a plugin never repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

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


def build_generator(name: str, options: dict[str, Any], context: GeneratorContext) -> nn.Module:
    """Build the named generator plugin for `context` and check that it honours the contract."""
    spec = registry.get("generators", name)
    generator = spec.build(options, context=context)
    missing = [attr for attr in ("encoder", "z_dim") if not hasattr(generator, attr)]
    if not isinstance(generator, nn.Module) or missing:
        raise SpadekitError(
            f"Generator plugin {name!r} returned {type(generator).__name__} without "
            f"{', '.join(missing) or 'nn.Module'}; "
            "a generator must be an nn.Module with `encoder` and `z_dim` attributes (see spadekit.generator)."
        )
    return generator


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
