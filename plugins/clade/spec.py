"""The `clade` generator plugin's options and spec; light to import (no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spadekit.plugin import ParamFreeNorm, PluginSpec


class CladeOptions(BaseModel):
    """CLADE (Tan et al., "Efficient Semantic Image Synthesis via Class-Adaptive Normalization", TPAMI 2021;
    tzt101/CLADE with `--norm_mode clade`): SPADE's generator with every SPADE replaced by a class-adaptive
    normalization, whose scale and bias are per-class vectors looked up by each pixel's label. `add_dist` is
    CLADE-ICPE (`--add_dist`): the intra-class positional encoding of the label map modulates those vectors.

    Defaults are the reference's (`spectralspadesyncbatch3x3`, ngf 64, z_dim 256, no VAE, no ICPE)."""

    model_config = ConfigDict(extra="forbid")

    ngf: int = Field(64, gt=0, description="base width: the first block has 16*ngf channels")
    num_upsampling_layers: Literal["normal", "more", "most"] = Field(
        "normal", description="5, 6 or 7 upsamplings; Cityscapes 512x256 uses 'more'"
    )
    input: Literal["segmap", "noise"] = Field(
        "segmap", description="the first layer's input: the downsampled segmentation map or a random vector"
    )
    use_vae: bool = Field(False, description="train an image encoder for multi-modal and style-guided synthesis")
    z_dim: int = Field(256, gt=0, description="latent size for noise input and the VAE")
    norm: ParamFreeNorm = Field("sync_batch", description="the parameter-free normalization CLADE modulates")
    spectral: bool = Field(True, description="spectral norm on the residual blocks' convs")
    add_dist: bool = Field(
        False,
        description="CLADE-ICPE: modulate the class scale and bias by the intra-class positional encoding "
        "(each pixel's offset from its connected region's centroid), computed from the label map at run time",
    )
    icpe_skip: int | None = Field(
        0,
        description="label id given no positional encoding: the reference's precomputation skips raw id 0 "
        "(COCO-Stuff 'person', ADE20K 'other', Cityscapes 'unlabeled': channel 0 in each); null encodes all",
    )

    @model_validator(mode="after")
    def _vae_takes_noise(self) -> CladeOptions:
        if self.use_vae:
            self.input = "noise"  # the VAE's latent replaces the segmap input (reference `use_vae`)
        return self


def build(options: CladeOptions, context):
    from spadekit_plugins.clade.generator import CLADEGenerator

    return CLADEGenerator(options, context)


spec = PluginSpec(
    kind="generators",
    name="clade",
    summary="CLADE (Tan et al. 2021): SPADE's generator with class-adaptive normalization; ICPE with add_dist.",
    options=CladeOptions,
    factory=build,
)
