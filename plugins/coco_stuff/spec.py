"""The coco-stuff dataset plugin: COCO 2017 photos with their stuffthingmaps labels and instance maps.

This module stays light (no numpy, no pycocotools): `spadekit plugins` imports it to show the summary.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import PluginSpec, SpadekitError


class CocoStuffOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: bool = Field(
        True,
        description="build instance maps from annotations/instances_{split}2017.json (official SPADE); "
        "false: label maps only, the annotation JSON is not needed",
    )


def build(options: CocoStuffOptions, src: Path | None = None):
    if src is None:
        raise SpadekitError(
            "Dataset 'coco-stuff' needs --src: the folder that holds train2017/, val2017/, "
            "stuffthingmaps_trainval2017/ and annotations/."
        )
    from spadekit_plugins.coco_stuff.source import CocoStuffSource

    return CocoStuffSource(options, Path(src))


spec = PluginSpec(
    kind="datasets",
    name="coco-stuff",
    summary="COCO-Stuff 2017 (--src holding train2017/, val2017/, stuffthingmaps_trainval2017/, annotations/); "
    "182 classes, instance maps from the COCO annotations.",
    options=CocoStuffOptions,
    factory=build,
)
