"""The `pix2pixhd` generator plugin's options and spec; light to import (no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import LayerNorm, PluginSpec


class Pix2PixHDOptions(BaseModel):
    """pix2pixHD's global generator as the paper's strong baseline pix2pixHD++ (Section 4, Tables 3 and 5).

    Defaults are pix2pixHD++: spectral norm and synchronized batch norm on every conv, trained by spadekit's
    trainer with the hinge loss and TTUR. Table 3's variants: `ngf = 48` is "compact pix2pixHD++",
    `concat = true` is "pix2pixHD++ w/ Concat", `spade = "all"` is "pix2pixHD++ w/ SPADE"; `norm =
    "spectralinstance"` is the official code's `--netG pix2pixhd --norm_G spectralinstance`."""

    model_config = ConfigDict(extra="forbid")

    ngf: int = Field(64, gt=0, description="width of the first conv; the residual blocks have 16*ngf channels")
    norm: LayerNorm = Field(
        "spectralsync_batch", description="norm of every conv but the last; 'spectral' adds spectral norm"
    )
    n_downsample: int = Field(4, ge=1, description="stride-2 convs down (and transposed convs back up)")
    n_blocks: int = Field(9, ge=0, description="residual blocks at the lowest resolution")
    concat: bool = Field(False, description="w/ Concat: the label map joins every residual block's input")
    spade: Literal["none", "decoder", "all"] = Field(
        "none",
        description="w/ SPADE: SPADE replaces the norm of the decoder's layers (residual blocks and "
        "upsampling) or of all layers; its parameter-free norm is `norm` without 'spectral'",
    )
    spade_hidden: int = Field(128, gt=0, description="width of SPADE's shared conv")


def build(options: Pix2PixHDOptions, context):
    from spadekit_plugins.pix2pixhd.generator import Pix2PixHDGenerator

    return Pix2PixHDGenerator(options, context)


spec = PluginSpec(
    kind="generators",
    name="pix2pixhd",
    summary="pix2pixHD++ (Park et al. 2019 baseline): pix2pixHD's encoder-decoder with spectral and sync batch norm.",
    options=Pix2PixHDOptions,
    factory=build,
)
