"""The `crn` generator plugin's options and spec; light to import (no torch)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from spadekit.plugin import PluginSpec


class CRNOptions(BaseModel):
    """A cascade of refinement modules at doubling resolutions, from `start_size` pixels high up to the image.

    CRN is trained by regression, not adversarially: its default [loss] (`default_loss`, see
    `spadekit.generator`) turns the GAN and feature-matching terms off and keeps the VGG19 perceptual loss,
    so the trainer runs no discriminator. A recipe's own [loss] values override these, e.g. `lambda_gan = 1`
    and `lambda_feat = 10` train it with the paper's GAN objective."""

    model_config = ConfigDict(extra="forbid")
    default_loss: ClassVar[dict[str, float]] = {"lambda_gan": 0.0, "lambda_feat": 0.0}

    start_size: int = Field(4, gt=0, description="height of the first module's output (Chen & Koltun: 4x8)")
    widths: list[PositiveInt] | None = Field(
        None,
        description="channels of each module, coarse to fine, one per resolution; default Chen & Koltun's: "
        "1024 up to 64 px high, 512 at 128 and 256, 128 at 512, 32 above",
    )
    spectral: bool = Field(False, description="spectral norm on the convs (CRN has none)")


def build(options: CRNOptions, context):
    from spadekit_plugins.crn.generator import CRNGenerator

    return CRNGenerator(options, context)


spec = PluginSpec(
    kind="generators",
    name="crn",
    summary="CRN (Chen & Koltun 2017): refinement modules at doubling resolutions; perceptual regression loss.",
    options=CRNOptions,
    factory=build,
)
