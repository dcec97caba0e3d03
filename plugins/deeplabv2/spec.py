"""The `deeplabv2` segmenter plugin's options and spec; light to import (no torch).

DeepLabV2-ResNet101 MSC of kazuto1011/deeplab-pytorch trained on COCO-Stuff 164k (`configs/cocostuff164k.yaml`),
the paper's evaluation segmenter for COCO-Stuff. It predicts the 182 stuffthingmaps ids 0..181.

Options:
- `checkpoint`: the published `deeplabv2_resnet101_msc-cocostuff164k-100000.pth` (the file, or a folder holding
  it); by default it is looked for in the torch hub cache (`$TORCH_HOME/hub/checkpoints`). Nothing is downloaded.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import PluginSpec, SpadekitError

WEIGHTS_FILE = "deeplabv2_resnet101_msc-cocostuff164k-100000.pth"
WEIGHTS_URL = f"https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/{WEIGHTS_FILE}"


class DeepLabV2Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(None, description=f"{WEIGHTS_FILE} (or its folder) [torch hub cache]")


def build(options: DeepLabV2Options, device=None, facts=None):
    if facts is not None:
        raise SpadekitError(
            "Segmenter 'deeplabv2' cannot be trained by spadekit: it loads the published COCO-Stuff weights "
            f"({WEIGHTS_FILE}); use segmenter 'smp' to train a segmenter."
        )
    from spadekit_plugins.deeplabv2.segmenter import DeepLabV2Segmenter

    return DeepLabV2Segmenter.from_checkpoint(options.checkpoint, device=device)


spec = PluginSpec(
    kind="segmenters",
    name="deeplabv2",
    summary="DeepLabV2-ResNet101 MSC on COCO-Stuff 164k (kazuto1011/deeplab-pytorch's published weights).",
    options=DeepLabV2Options,
    factory=build,
)
