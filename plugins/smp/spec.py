"""The `smp` segmenter plugin's options and spec; light to import (no torch, no smp).

Options:
- `checkpoint`: a segmenter file written by `spadekit segmenter train`; architecture, encoder, input size and
  label space then come from the file, and `arch`/`encoder`, if given, must agree with it;
- `arch`, `encoder`: any segmentation_models_pytorch architecture ("unet", "fpn", "deeplabv3plus", ...)
  and encoder ("resnet18", "tu-..." timm encoders, ...) for a fresh model (default unet + resnet18);
- `encoder_weights`: pretrained encoder weights for a fresh model (None: random init; "imagenet" needs
  the weights file in the Hugging Face cache, or a download);
- `input_size`: the network sees photos resized, keeping their aspect ratio, so that the shorter side is
  `input_size` and the longer side the nearest multiple of 32 to its scaled length; default: the
  checkpoint's, or 256 for a fresh model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import PluginSpec, SpadekitError

SIZE_MULTIPLE = 32  # smp encoders downsample 5 times
DEFAULT_ARCH = "unet"
DEFAULT_ENCODER = "resnet18"
DEFAULT_INPUT_SIZE = 256


class SmpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(None, description="segmenter.pt written by `spadekit segmenter train`")
    arch: str | None = Field(None, description=f"smp architecture, e.g. unet, fpn, deeplabv3plus [{DEFAULT_ARCH}]")
    encoder: str | None = Field(None, description=f"smp encoder, e.g. resnet18, resnet34 [{DEFAULT_ENCODER}]")
    encoder_weights: str | None = Field(None, description="pretrained encoder of a fresh model, e.g. imagenet")
    input_size: int | None = Field(
        None,
        ge=SIZE_MULTIPLE,
        multiple_of=SIZE_MULTIPLE,
        description=f"shorter side of the network's input, aspect ratio kept [{DEFAULT_INPUT_SIZE}]",
    )


def build(options: SmpOptions, device=None, facts=None):
    if options.checkpoint is None and facts is None:
        raise SpadekitError(
            "Segmenter 'smp' needs a checkpoint: pass --set segmenter_ckpt=PATH (or --segmenter-ckpt PATH), "
            "or train one with `spadekit segmenter train SHARDS --out DIR`."
        )
    from spadekit_plugins.smp.segmenter import SmpSegmenter

    if options.checkpoint is not None:
        return SmpSegmenter.from_checkpoint(options, device=device, facts=facts)
    return SmpSegmenter.fresh(options, facts, device=device)


spec = PluginSpec(
    kind="segmenters",
    name="smp",
    summary="segmentation_models_pytorch (unet, fpn, deeplabv3plus, ...); train one with `spadekit segmenter train`.",
    options=SmpOptions,
    factory=build,
)
