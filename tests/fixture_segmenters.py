"""A segmenter plugin for tests, registered through SPADEKIT_PLUGINS (`colours=tests.fixture_segmenters:colours`).

It follows the contract of spadekit/segmenter.py with no network: its "checkpoint" is a small JSON file of
class colours, `{"sky": [70, 130, 180], ...}` (entry i = class id i), and it labels each pixel with the class
whose colour is nearest. When FIXTURE_SEGMENTER_LOG names a file, each build appends its process id to it, so
that a test can see which processes built one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from spadekit.data.manifest import DatasetFacts
from spadekit.errors import SpadekitError
from spadekit.registry import PluginSpec

LOG_VAR = "FIXTURE_SEGMENTER_LOG"


class ColourOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: Path | None = None
    file_id_offset: int = 0  # what label files hold for class 0 (like ADE20K's 1..150)


class NearestColourSegmenter:
    def __init__(self, facts: DatasetFacts, device: torch.device):
        self.facts = facts
        self.device = device
        self.colours = torch.tensor(facts.palette, dtype=torch.float32, device=device) / 255  # K x 3

    def predict(self, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        with torch.no_grad():
            images = images.to(self.device, torch.float32)
            if size is not None and tuple(size) != tuple(images.shape[-2:]):
                images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
            distance = ((images[:, None] - self.colours[None, :, :, None, None]) ** 2).sum(dim=2)  # B x K x h x w
            return distance.argmin(dim=1)


def build(options: ColourOptions, device: torch.device, facts: DatasetFacts | None = None) -> NearestColourSegmenter:
    if facts is not None:
        raise SpadekitError("Segmenter 'colours' cannot be trained; its checkpoint is a JSON file of class colours.")
    if options.checkpoint is None:
        raise SpadekitError("Segmenter 'colours' needs --set checkpoint=PATH, a JSON file of class colours.")
    if not options.checkpoint.is_file():
        raise SpadekitError(f"Segmenter checkpoint {options.checkpoint} does not exist; give the path of a JSON file.")
    colours = json.loads(options.checkpoint.read_text())
    if log := os.environ.get(LOG_VAR):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
    facts = DatasetFacts(name="colours", class_names=list(colours), palette=[tuple(c) for c in colours.values()])
    segmenter = NearestColourSegmenter(facts, device)
    segmenter.file_id_offset = options.file_id_offset
    return segmenter


colours = PluginSpec(
    kind="segmenters",
    name="colours",
    summary="Nearest class colour (tests only).",
    options=ColourOptions,
    factory=build,
)
