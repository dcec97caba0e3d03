"""The segmenter plugin contract: photos in, label maps out.

A segmenter plugin is an entry point in the `spadekit.segmenters` group naming a `PluginSpec` whose factory is
called as `factory(options, device=torch.device, facts=DatasetFacts | None)` and returns an object with:

- `facts`: the `DatasetFacts` of the label space it predicts (class names, palette); the ids it returns are
  class ids of that space (never the don't-care id);
- `predict(images, size=None)`: `images` is a float tensor B x 3 x H x W, RGB in [0, 1], of any size, on any
  device; the result is an int64 tensor B x h x w of class ids at `size` = (h, w), by default the input size.
  The segmenter does its own normalization and resizing, and runs without gradients, in eval mode.

Optional attributes (read with `getattr`, defaults in brackets):
- `file_id_offset` [0]: the id that label files of the segmenter's dataset hold for class 0 (1 for a segmenter
  of ADE20K's 150 classes, whose annotation PNGs keep 0 for "other"); `spadekit segmenter predict` writes
  class + offset;
- `procedure` [""]: one line saying how `predict` prepares, scales and fuses its input (the test procedure of
  a published network), printed in the benchmark protocol;
- `weight_files` [the checkpoint given]: the files the weights were read from, whose sha256 the benchmark
  protocol records (a paper segmenter may have found them in the torch hub cache, or in a folder).

Every segmenter plugin's options accept `checkpoint` (the weights file). Loading weights is the plugin's job;
a missing file is a SpadekitError naming it, never random weights. `facts` is given only when a caller builds
an untrained segmenter to train it (`spadekit segmenter train --segmenter NAME`): the object built then is a
`TrainableSegmenter` (below); a plugin that cannot be trained raises a SpadekitError saying so.

Uses: `spadekit prepare flickr` (auto-labelling photos), `spadekit bench` (mIoU of generated images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from spadekit import registry
from spadekit.data.manifest import DatasetFacts


@runtime_checkable
class Segmenter(Protocol):
    """Photos in, class ids out; the optional attributes above are read with `getattr`."""

    facts: DatasetFacts

    def predict(self, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor: ...


@runtime_checkable
class TrainableSegmenter(Segmenter, Protocol):
    """A segmenter that `spadekit segmenter train` can train (see spadekit.segmenter_train)."""

    model: nn.Module  # the network: its parameters are optimized, its train/eval mode set

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the network sees for photos of height x width; the train split is resized to it."""
        ...

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores B x label_nc x h x w at `network_size` for RGB images in [0, 1]; gradients flow."""
        ...

    def save(self, path: Path, **extra: Any) -> None:
        """Write the segmenter atomically to `path`, with `extra` (epoch, scores, shards) in the file, so that
        building the plugin with `checkpoint=path` loads it."""
        ...


def build_segmenter(
    name: str,
    checkpoint: Path | str | None = None,
    options: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    facts: DatasetFacts | None = None,
) -> Segmenter:
    """Build segmenter plugin `name` with its options (plus `checkpoint`, when given) on `device`."""
    values = dict(options or {})
    if checkpoint is not None:
        values["checkpoint"] = str(checkpoint)
    return registry.get("segmenters", name).build(values, device=torch.device(device), facts=facts)
