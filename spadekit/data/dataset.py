"""The training data loader: shards -> SPADE's transforms -> tensors, as the official Pix2pixDataset.

Randomness (crop position, flip) comes from a generator seeded by (seed, epoch, index), so a sample's
crop is reproducible, changes with the epoch and does not depend on the number of workers. With
train=False there is no flip, but the crop position is still drawn, as official `get_params` does (the
official test options set load_size = crop_size, so the crop then covers the whole resized image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler

from spadekit.data.edges import instance_edges_np
from spadekit.data.reader import SplitReader
from spadekit.data.sample import Sample
from spadekit.data.transforms import Preprocess, image_to_tensor, make_plan, transform_image, transform_map
from spadekit.errors import SpadekitError


class ShardDataset(Dataset):
    """Sample i of a split as a dict: image (3xHxW float in [-1,1]), label (1xHxW int64), instance
    (1xHxW int32, zeros without instance maps), edge (1xHxW float32), key (str)."""

    def __init__(self, root: Path, split: str, preprocess: Preprocess | None = None, train: bool = True,
                 seed: int = 0):
        self.reader = SplitReader(root, split)  # opens its HDF5 files lazily, once per worker process
        self.preprocess = preprocess or Preprocess()
        self.train = train
        self.seed = seed
        facts = self.reader.facts
        self.label_nc = facts.label_nc
        self.dontcare_id = facts.dontcare_id
        self.has_instances = facts.has_instances
        # shared memory: set_epoch in the main process reaches persistent DataLoader workers too
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> dict:
        return self.process(self.load_sample(i), i)

    def load_sample(self, i: int) -> Sample:
        return self.reader.read(i)

    def process(self, sample: Sample, i: int) -> dict:
        """Check, transform (randomness from seed, epoch and index i) and convert one sample."""
        self._check_labels(sample)
        h, w = sample.label.shape
        rng = np.random.default_rng([self.seed, self.epoch, i])
        plan = make_plan(self.preprocess, w, h, self.train, rng)
        label = transform_map(sample.label, plan).astype(np.int64)
        if self.dontcare_id is not None:  # official: label[label == 255] = label_nc
            label[label == self.dontcare_id] = self.label_nc
        if sample.instance is not None:
            instance = transform_map(sample.instance, plan)
            edge = instance_edges_np(instance)
        else:
            instance = np.zeros(label.shape, np.int32)
            edge = np.zeros(label.shape, np.float32)
        return {
            "image": image_to_tensor(transform_image(sample.image, plan)),
            "label": torch.from_numpy(label)[None],
            "instance": torch.from_numpy(instance)[None],
            "edge": torch.from_numpy(edge)[None],
            "key": sample.key,
        }

    def _check_labels(self, sample: Sample) -> None:
        label = sample.label
        if int(label.max()) < self.label_nc:  # the common case costs one max()
            return
        bad = np.unique(label[label >= self.label_nc])
        bad = bad[bad != self.dontcare_id] if self.dontcare_id is not None else bad
        if bad.size:
            dontcare = f" (don't-care id {self.dontcare_id})" if self.dontcare_id is not None else ""
            raise SpadekitError(
                f"label id {int(bad[0])} in sample {sample.key!r} exceeds the dataset's {self.label_nc} "
                f"classes{dontcare}; fix the converter's class mapping or the class list and re-run "
                "`spadekit prepare`."
            )


class EpochShuffle(Sampler):
    """Random order that depends only on (seed, epoch), whatever the worker count or past epochs."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())


class EpochLoader(DataLoader):
    """A DataLoader whose `set_epoch` reseeds the crops/flips and the shuffle order for that epoch."""

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


def make_loader(dataset: ShardDataset, batch_size: int, num_workers: int = 0, shuffle: bool = True,
                drop_last: bool = True, seed: int = 0, distributed: bool = False) -> EpochLoader:
    """DataLoader over `dataset`; call `loader.set_epoch(e)` before each epoch (it reaches the crops and
    flips in persistent workers and the shuffle order, also of a DistributedSampler)."""
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        sampler = EpochShuffle(len(dataset), seed) if shuffle else SequentialSampler(dataset)
    return EpochLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
