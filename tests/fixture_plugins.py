"""Dataset plugins for tests, registered through SPADEKIT_PLUGINS as a plugin author would while writing one."""

from __future__ import annotations

import os
import time

import numpy as np
from pydantic import BaseModel, ConfigDict

from spadekit.data import DatasetFacts, Sample, SkipSample
from spadekit.registry import PluginSpec
from spadekit_plugins.toyscapes.source import ToyscapesSource
from spadekit_plugins.toyscapes.spec import ToyscapesOptions


class SlowToyscapes(ToyscapesSource):
    """toyscapes that takes SLOWTOYS_SECONDS per sample, so that a test can kill prepare mid-way."""

    def load(self, split: str, key: str) -> Sample:
        time.sleep(float(os.environ.get("SLOWTOYS_SECONDS", "0.05")))
        return super().load(split, key)


slowtoys = PluginSpec(
    kind="datasets",
    name="slowtoys",
    summary="toyscapes, slowly (tests only).",
    options=ToyscapesOptions,
    factory=lambda options, src=None: SlowToyscapes(options),
)


class MessyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bad_label: bool = False


class MessySource:
    """Five 8x6 samples; 'b' has no label file (skipped); with bad_label, 'c' holds label id 200."""

    facts = DatasetFacts(name="messy", class_names=["a", "b", "c"], palette=[(1, 1, 1), (2, 2, 2), (3, 3, 3)])

    def __init__(self, options: MessyOptions):
        self.options = options

    def splits(self) -> list[str]:
        return ["train"]

    def keys(self, split: str) -> list[str]:
        return list("abcde")

    def load(self, split: str, key: str) -> Sample:
        if key == "b":
            raise SkipSample("labels/b.png is missing")
        label = np.full((6, 8), "abcde".index(key) % 3, np.uint8)
        if key == "c" and self.options.bad_label:
            label[0, 0] = 200
        return Sample(key, np.zeros((6, 8, 3), np.uint8), label)


messy = PluginSpec(
    kind="datasets",
    name="messy",
    summary="Tiny dataset with a missing file (tests only).",
    options=MessyOptions,
    factory=lambda options, src=None: MessySource(options),
)
