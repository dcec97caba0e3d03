"""The cityscapes dataset plugin: leftImg8bit images with their gtFine labels and instance maps.

This module stays light (no numpy): `spadekit plugins` imports it to show the summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import PluginSpec, SpadekitError


class CityscapesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label_space: Literal["labelIds", "trainIds"] = Field(
        "labelIds",
        description="labelIds: the 35 ids as stored (official SPADE, label_nc 35); "
        "trainIds: the 19 training classes, everything else don't-care 255",
    )


def build(options: CityscapesOptions, src: Path | None = None):
    if src is None:
        raise SpadekitError(
            "Dataset 'cityscapes' needs --src: the Cityscapes folder that holds leftImg8bit/ and gtFine/."
        )
    from spadekit_plugins.cityscapes.source import CityscapesSource

    return CityscapesSource(options, Path(src))


spec = PluginSpec(
    kind="datasets",
    name="cityscapes",
    summary="Cityscapes fine annotations (--src holding leftImg8bit/ and gtFine/); 35 labelIds or 19 trainIds.",
    options=CityscapesOptions,
    factory=build,
)
