"""Read one split of a prepared dataset as a flat sequence of samples."""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from spadekit.data.manifest import DatasetFacts, Manifest
from spadekit.data.sample import Sample
from spadekit.data.shards import ShardFile


class SplitReader:
    """Sample i of a split, across its shards. Files open lazily, once per process, each checked against
    the manifest's sha256 before its first read (see ShardFile): every reader returns exactly what was stored."""

    def __init__(self, root: Path, split: str, manifest: Manifest | None = None):
        self.root = Path(root)
        self.split = split
        self.manifest = manifest or Manifest.load(self.root)
        info = self.manifest.split(split)
        self.shards = [ShardFile(self.root / s.file, s.sha256) for s in info.shards]
        self._starts = np.cumsum([0] + [s.num_samples for s in info.shards]).tolist()

    @property
    def facts(self) -> DatasetFacts:
        return self.manifest.dataset

    def __len__(self) -> int:
        return self._starts[-1]

    def stored_dtype(self, name: str) -> np.dtype | None:
        """The widest stored dtype of array `name` ("label", "instance") across the shards, or None."""
        dtypes = [dtype for dtype in (shard.stored_dtype(name) for shard in self.shards) if dtype is not None]
        return np.result_type(*dtypes) if dtypes else None

    def verify(self) -> None:
        """Check every shard now (rather than at its first read), raising one sentence for the first bad one."""
        for shard in self.shards:
            shard.verify()

    def read(self, i: int) -> Sample:
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} of a split with {len(self)} samples")
        shard = bisect.bisect_right(self._starts, i) - 1
        return self.shards[shard].read(i - self._starts[shard])
