"""What a dataset plugin's factory returns: the source of samples that `spadekit prepare` shards.

A dataset plugin's spec has `kind="datasets"` and a factory `factory(options, src: Path | None)` that returns
a `DatasetSource`. Keys must come in a deterministic order: shard contents, and so checksums, follow it.
A source may also define `summary_lines() -> list[str]`: lines prepare prints under its summary table (for
example how many images a subset filter kept).
"""

from __future__ import annotations

from typing import Protocol

from spadekit.data.manifest import DatasetFacts
from spadekit.data.sample import Sample, SkipSample

__all__ = ["DatasetSource", "Sample", "SkipSample"]


class DatasetSource(Protocol):
    facts: DatasetFacts

    def splits(self) -> list[str]:
        """The splits this source provides (e.g. ["train", "val"])."""
        ...

    def keys(self, split: str) -> list[str]:
        """Sample keys (source file stems) of a split, in a fixed order."""
        ...

    def load(self, split: str, key: str) -> Sample:
        """Read one sample; raise SkipSample(reason) for a source file that cannot be used."""
        ...
