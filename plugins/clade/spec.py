"""The `clade` generator plugin's options and spec; light to import (no torch)."""

from __future__ import annotations

from pydantic import Field

from spadekit.plugin import PluginSpec
from spadekit_plugins.spade.spec import SpadeBackbone


class CladeOptions(SpadeBackbone):
    """CLADE (Tan et al., "Efficient Semantic Image Synthesis via Class-Adaptive Normalization", TPAMI 2021;
    tzt101/CLADE with `--norm_mode clade`): SPADE's generator with every SPADE replaced by a class-adaptive
    normalization, whose scale and bias are per-class vectors looked up by each pixel's label. `add_dist` is
    CLADE-ICPE (`--add_dist`): the intra-class positional encoding of the label map modulates those vectors.

    Defaults are the reference's (`spectralspadesyncbatch3x3`, ngf 64, z_dim 256, no VAE, no ICPE); the backbone
    options are SPADE's (`SpadeBackbone`)."""

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
