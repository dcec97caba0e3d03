"""The `drn` segmenter plugin's options and spec; light to import (no torch).

DRN-D-105 of fyu/drn trained on Cityscapes (`DRNSeg('drn_d_105', 19)`, the published
`drn-d-105_ms_cityscapes.pth`), the paper's evaluation segmenter for Cityscapes. It predicts the 19 trainIds.

Options:
- `checkpoint`: the published `drn-d-105_ms_cityscapes.pth` (the file, or a folder holding it); by default it is
  looked for in the torch hub cache (`$TORCH_HOME/hub/checkpoints`). Nothing is downloaded.
- `multi_scale`: segment.py's `--ms` test (scales 1, 0.5, 0.75, 1.25, 1.5, 1.75, summed log-probabilities)
  instead of its default single-scale test; about 8x slower.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import PluginSpec, SpadekitError

WEIGHTS_FILE = "drn-d-105_ms_cityscapes.pth"
WEIGHTS_URL = "http://go.yf.io/drn-cityscapes-models"  # the README's link to the Cityscapes models


class DrnOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(None, description=f"{WEIGHTS_FILE} (or its folder) [torch hub cache]")
    multi_scale: bool = Field(False, description="segment.py's --ms test (6 scales) instead of single-scale")


def build(options: DrnOptions, device=None, facts=None):
    if facts is not None:
        raise SpadekitError(
            "Segmenter 'drn' cannot be trained by spadekit: it loads the published Cityscapes weights "
            f"({WEIGHTS_FILE}); use segmenter 'smp' to train a segmenter."
        )
    from spadekit_plugins.drn.segmenter import DrnSegmenter

    return DrnSegmenter.from_checkpoint(options.checkpoint, multi_scale=options.multi_scale, device=device)


spec = PluginSpec(
    kind="segmenters",
    name="drn",
    summary="DRN-D-105 on Cityscapes, 19 trainIds (fyu/drn's published drn-d-105_ms_cityscapes.pth).",
    options=DrnOptions,
    factory=build,
)
