"""The `upernet` segmenter plugin's options and spec; light to import (no torch).

UperNet-101 of CSAILVision/semantic-segmentation-pytorch for ADE20K's 150 classes, with its published
weights (`encoder_epoch_50.pth`, `decoder_epoch_50.pth`) and its multi-scale test procedure.

Options (defaults are `config/ade20k-resnet101-upernet.yaml`'s DATASET section):
- `checkpoint`: the folder holding both published files (or the encoder file, the decoder beside it); when
  unset, the torch hub cache's checkpoints folder;
- `img_sizes`: the short sides of the test scales (imgSizes);
- `img_max_size`: the most the long side may be scaled to (imgMaxSize);
- `padding_constant`: each scaled side is rounded up to a multiple of it (the image is stretched, not padded).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from spadekit.plugin import PluginSpec, SpadekitError

WEIGHTS_URL = "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet101-upernet/"


class UperNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(
        None, description="folder with encoder_epoch_50.pth and decoder_epoch_50.pth [torch hub cache]"
    )
    img_sizes: tuple[PositiveInt, ...] = Field(
        (300, 375, 450, 525, 600), min_length=1, description="short side of each test scale (imgSizes)"
    )
    img_max_size: PositiveInt = Field(1000, description="largest scaled long side (imgMaxSize)")
    padding_constant: PositiveInt = Field(32, description="scaled sides are rounded up to a multiple of this")


def build(options: UperNetOptions, device=None, facts=None):
    if facts is not None:
        raise SpadekitError(
            "Segmenter 'upernet' cannot be trained by spadekit: it loads the published UperNet-101 ADE20K weights "
            f"({WEIGHTS_URL}); train the 'smp' segmenter instead."
        )
    from spadekit_plugins.upernet.segmenter import UperNetSegmenter

    return UperNetSegmenter.from_options(options, device=device)


spec = PluginSpec(
    kind="segmenters",
    name="upernet",
    summary="UperNet-101 (CSAIL semantic-segmentation-pytorch), ADE20K 150 classes, published weights, 5-scale test.",
    options=UperNetOptions,
    factory=build,
)
