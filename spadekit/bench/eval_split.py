"""The evaluation split, as bench generates it: its samples at the generation resolution, in batches.

The split is read in shard order (the first `num` samples) with the official test-time geometry: image and
label map resized straight to the generation resolution (`Preprocess(mode="fixed")`: bicubic images,
nearest labels and instance maps), no crop, no flip. The generation itself is `spadekit.synthesis`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from spadekit.data.dataset import ShardDataset, finish
from spadekit.data.transforms import Preprocess
from spadekit.run_info import RunInfo


def eval_dataset(shards: Path, split: str, info: RunInfo, num: int | None) -> Subset:
    """The first `num` samples of the split (all when None), at the run's generation resolution."""
    geometry = Preprocess(mode="fixed", crop_size=info.crop_size, aspect_ratio=info.aspect_ratio, flip=False)
    dataset = ShardDataset(shards, split, geometry, train=False)
    return Subset(dataset, range(min(num or len(dataset), len(dataset))))


def eval_batches(dataset: Subset, batch_size: int, workers: int, device: torch.device) -> Iterator[dict]:
    """Finished batches (see `spadekit.data.dataset.finish`) plus "image_uint8", the real images as stored."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    for batch in loader:
        yield {**finish(batch, device), "image_uint8": batch["image"]}
