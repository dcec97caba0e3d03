"""The toyscapes dataset plugin: procedurally generated landscapes with labels, instances and a style.

This module stays light (no numpy): `spadekit plugins` imports it to show the summary.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import PluginSpec


class ToyscapesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_train: int = Field(1000, ge=1, description="training images to generate")
    num_val: int = Field(200, ge=1, description="validation images to generate")
    size: int = Field(256, ge=64, le=512, description="image side in pixels (square)")
    seed: int = Field(0, ge=0, description="the same seed always gives the same images")


def build(options: ToyscapesOptions, src: Path | None = None):
    from spadekit_plugins.toyscapes.source import ToyscapesSource

    return ToyscapesSource(options)


spec = PluginSpec(
    kind="datasets",
    name="toyscapes",
    summary="Procedural landscapes (9 classes, tree/rock instances, per-image style); generated, no --src.",
    options=ToyscapesOptions,
    factory=build,
)
