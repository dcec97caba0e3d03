"""The training data loader: shards -> SPADE's transforms -> tensors, as the official Pix2pixDataset.

Randomness (crop position, flip) comes from a generator seeded by (seed, epoch, index), so a sample's
crop is reproducible, changes with the epoch and does not depend on the number of workers. With
train=False there is no flip, but the crop position is still drawn, as official `get_params` does (the
official test options set load_size = crop_size, so the crop then covers the whole resized image).

Workers send compact items (uint8 image and label, uint16 instance map where ids fit): moving a batch between processes
costs about as much as preparing it, and float32 images, int64 labels and float edges are 3.5x the bytes.
`finish` then makes the training tensors on the consumer's device, as the official model's
`preprocess_input` computes edges on the GPU; the loader of `make_loader` applies it to every batch.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler

from spadekit.data.edges import instance_edges
from spadekit.data.reader import SplitReader
from spadekit.data.sample import Sample
from spadekit.data.transforms import Preprocess, image_to_tensor, make_plan, transform_image, transform_map
from spadekit.data.workers import cap_workers
from spadekit.errors import SpadekitError


class ShardDataset(Dataset):
    """Sample i of a split as a compact dict: image (3xHxW uint8); label (1xHxW uint8, or int32 beyond 255
    classes; don't-care mapped to label_nc); instance (1xHxW uint16 when every stored id fits, else int32;
    uint8 zeros without instance maps); key (str). `finish(item)` turns it into training tensors."""

    def __init__(self, root: Path, split: str, preprocess: Preprocess | None = None, train: bool = True,
                 seed: int = 0):
        self.reader = SplitReader(root, split)  # opens its HDF5 files lazily, once per worker process
        # every shard is checked against its checksum here, once, in the main process: forked workers
        # inherit the result instead of each hashing the split again, and a damaged shard is one sentence
        # rather than an error wrapped in a DataLoader worker's traceback
        self.reader.verify()
        self.preprocess = preprocess or Preprocess()
        self.train = train
        self.seed = seed
        facts = self.reader.facts
        self.label_nc = facts.label_nc
        self.dontcare_id = facts.dontcare_id
        self.has_instances = facts.has_instances
        # the smallest dtypes that hold every value: fewer bytes between worker and trainer processes
        self._label_dtype = np.uint8 if self.label_nc <= 255 else np.int32  # label_nc itself must fit
        stored = self.reader.stored_dtype("instance") if self.has_instances else None
        self._instance_dtype = np.uint16 if stored == np.uint16 else np.int32
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
        label = transform_map(sample.label, plan).astype(self._label_dtype)
        if self.dontcare_id is not None:  # official: label[label == 255] = label_nc
            label[label == self.dontcare_id] = self.label_nc
        if sample.instance is not None:
            instance = transform_map(sample.instance, plan).astype(self._instance_dtype)
        else:
            instance = np.zeros(label.shape, np.uint8)
        return {
            "image": transform_image(sample.image, plan).contiguous(),
            "label": torch.from_numpy(label)[None],
            "instance": torch.from_numpy(instance)[None],
            "key": sample.key,
        }

    def _check_labels(self, sample: Sample) -> None:
        bad = self.reader.facts.invalid_label_ids(sample.label)
        if bad:
            dontcare = f" (don't-care id {self.dontcare_id})" if self.dontcare_id is not None else ""
            raise SpadekitError(
                f"label id {bad[0]} in sample {sample.key!r} exceeds the dataset's {self.label_nc} "
                f"classes{dontcare}; fix the converter's class mapping or the class list and re-run "
                "`spadekit prepare`."
            )


def finish(batch: dict, device: torch.device | str | None = None) -> dict:
    """Compact item or batch -> training tensors on `device`: image float32 in [-1, 1] (official ToTensor +
    Normalize(0.5, 0.5)), label int64, instance int32, edge float32 (official `get_edges`), key."""
    instance = batch["instance"].to(device, non_blocking=True).to(torch.int32)
    return {
        "image": image_to_tensor(batch["image"].to(device, non_blocking=True)),
        "label": batch["label"].to(device, non_blocking=True).to(torch.int64),
        "instance": instance,
        "edge": instance_edges(instance),
        "key": batch["key"],
    }


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


class ResumableSampler(Sampler):
    """Another sampler's order from its `skip`-th index on: a resumed run continues mid-epoch with exactly
    the batches an uninterrupted run would have seen."""

    def __init__(self, inner: Sampler):
        self.inner, self.skip = inner, 0

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)

    def __iter__(self):
        return itertools.islice(iter(self.inner), self.skip, None)


class EpochLoader(DataLoader):
    """A DataLoader that yields finished batches (see `finish`) on `device`, and whose `set_epoch`
    reseeds the crops/flips and the shuffle order for that epoch."""

    device: torch.device | str | None = None

    def __iter__(self):
        for batch in super().__iter__():
            yield finish(batch, self.device)

    @property
    def batches_per_epoch(self) -> int:
        """Batches of a whole epoch, whatever `set_epoch(..., skip_batches)` skips."""
        n = len(self.sampler.inner)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Prepare epoch `epoch`; with `skip_batches`, start after that many of its batches (resume)."""
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        self.sampler.skip = skip_batches * self.batch_size


def make_loader(dataset: ShardDataset, batch_size: int, num_workers: int = 0, shuffle: bool = True,
                drop_last: bool = True, seed: int = 0, distributed: bool = False,
                device: torch.device | str | None = None) -> EpochLoader:
    """DataLoader over `dataset` yielding finished batches on `device` (default: CPU); call
    `loader.set_epoch(e)` before each epoch. More workers than CPUs are reduced with a warning (the batches
    do not depend on the worker count)."""
    num_workers = cap_workers(num_workers, "num_workers")
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        sampler = EpochShuffle(len(dataset), seed) if shuffle else SequentialSampler(dataset)
    loader = EpochLoader(
        dataset,
        batch_size=batch_size,
        sampler=ResumableSampler(sampler),
        generator=torch.Generator(),  # worker seeds must not consume the global RNG (exact resume)
        num_workers=num_workers,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        pin_memory=torch.device(device or "cpu").type == "cuda",
    )
    loader.device = device
    return loader

