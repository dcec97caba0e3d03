"""The `spade` generator plugin's options and spec; light to import (no torch)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spadekit.plugin import ParamFreeNorm, PluginSpec


class SpadeBackbone(BaseModel):
    """What SPADE's generator is made of whatever modulates its blocks (SPADE here, CLADE in the clade plugin):
    width, upsampling schedule, head input, image encoder and the parameter-free norm."""

    model_config = ConfigDict(extra="forbid")
    # the 2x upsamplings of each num_upsampling_layers value: what `spadekit import nvlabs` asks the plugin for
    UPSAMPLINGS: ClassVar[dict[str, int]] = {"normal": 5, "more": 6, "most": 7}

    ngf: int = Field(64, gt=0, description="base width: the first block has 16*ngf channels")
    num_upsampling_layers: Literal["normal", "more", "most"] = Field(
        "normal", description="5, 6 or 7 upsamplings; Cityscapes 512x256 uses 'more'"
    )
    input: Literal["segmap", "noise"] = Field(
        "segmap", description="the first layer's input: the downsampled segmentation map or a random vector"
    )
    use_vae: bool = Field(False, description="train an image encoder for multi-modal and style-guided synthesis")
    z_dim: int = Field(256, gt=0, description="latent size for noise input and the VAE")
    norm: ParamFreeNorm = Field(
        "sync_batch", description="the parameter-free normalization its blocks modulate"
    )
    spectral: bool = Field(True, description="spectral norm on the residual blocks' convs")

    @model_validator(mode="after")
    def _vae_takes_noise(self) -> SpadeBackbone:
        if self.use_vae:
            self.input = "noise"  # the VAE's latent replaces the segmap input (official `use_vae`)
        return self


class SpadeOptions(SpadeBackbone):
    """The paper's generator and its Table 3/4 variants. Defaults are the paper's configuration.

    Width: ngf 64 is the paper's 96M-parameter generator; the "compact" generator of Tables 3 and 4 (61M)
    is ngf 48, the large one (141M) ngf 80 (parameter counts for ADE20K at 256x256). `concat = true` is
    Table 3's "decoder w/ Concat" (79M): the same residual blocks without SPADE."""

    kernel_size: Literal[1, 3, 5] = Field(3, description="conv kernel acting on the label map inside SPADE")
    hidden: int = Field(128, gt=0, description="width of SPADE's shared conv")
    concat: bool = Field(
        False,
        description="decoder w/ Concat (Table 3): each SPADE becomes the parameter-free `norm` and the label map "
        "is concatenated to the input of the conv it fed",
    )


def build(options: SpadeOptions, context):
    from spadekit_plugins.spade.generator import SPADEGenerator

    return SPADEGenerator(options, context)


spec = PluginSpec(
    kind="generators",
    name="spade",
    summary="SPADE (Park et al. 2019): SPADE residual blocks decoding a segmap or latent; VAE style encoder.",
    options=SpadeOptions,
    factory=build,
)
