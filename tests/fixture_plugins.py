"""Dataset plugins and a trainable segmenter for tests, registered through SPADEKIT_PLUGINS as a plugin author
would while writing one."""

from __future__ import annotations

import os
import time

import numpy as np
from pydantic import BaseModel, ConfigDict

from spadekit.plugin import DatasetFacts, PluginSpec, Sample, SkipSample
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


class PixelsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = None


class PixelSegmenter:
    """A per-pixel linear classifier (a 1x1 conv) at the photos' own size: the smallest `TrainableSegmenter`."""

    def __init__(self, facts: DatasetFacts, device):
        import torch

        self.facts, self.device = facts, device
        self.model = torch.nn.Conv2d(3, facts.label_nc, 1).to(device)

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width

    def logits(self, images):
        return self.model(images.to(self.device))

    def predict(self, images, size=None):
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            logits = self.logits(images)
            if size is not None:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            return logits.argmax(1).to(images.device)

    def save(self, path, **extra) -> None:
        import torch

        torch.save({"facts": self.facts.model_dump(mode="json"), "state_dict": self.model.state_dict(), **extra}, path)


def _build_pixels(options: PixelsOptions, device=None, facts: DatasetFacts | None = None) -> PixelSegmenter:
    import torch

    if options.checkpoint is None:
        return PixelSegmenter(facts, device)
    state = torch.load(options.checkpoint, weights_only=True)
    segmenter = PixelSegmenter(DatasetFacts.model_validate(state["facts"]), device)
    segmenter.model.load_state_dict(state["state_dict"])
    return segmenter


pixels = PluginSpec(
    kind="segmenters",
    name="pixels",
    summary="A trainable per-pixel linear segmenter (tests only).",
    options=PixelsOptions,
    factory=_build_pixels,
)
