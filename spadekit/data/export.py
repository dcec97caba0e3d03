"""`spadekit data export`: shards back to PNG files, exactly the stored pixels.

Layout: OUT/<split>/images/<key>.png (RGB), labels/<key>.png (8-bit, or 16-bit when ids exceed 255),
instances/<key>.png (16-bit), the layout of SPADE's custom dataset mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from spadekit.data.manifest import Manifest
from spadekit.data.reader import SplitReader
from spadekit.errors import SpadekitError
from spadekit.imageio import save_png


def export(root: Path, out: Path, splits: list[str] | None = None, on_sample: Callable[[], None] | None = None) -> int:
    """Write every sample of `splits` (default: all) under `out`; returns the number of samples."""
    manifest = Manifest.load(root)
    count = 0
    for split in splits or list(manifest.splits):
        reader = SplitReader(root, split, manifest)
        for i in range(len(reader)):
            _export_sample(reader, i, Path(out) / split)
            count += 1
            if on_sample:
                on_sample()
    return count


def _export_sample(reader: SplitReader, i: int, folder: Path) -> None:
    sample = reader.read(i)
    save_png(folder / "images" / f"{sample.key}.png", sample.image)
    save_png(folder / "labels" / f"{sample.key}.png", sample.label)
    if sample.instance is not None:
        if sample.instance.min() < 0 or sample.instance.max() > np.iinfo(np.uint16).max:
            raise SpadekitError(
                f"Instance ids of sample {sample.key!r} do not fit a 16-bit PNG; export cannot write them exactly."
            )
        save_png(folder / "instances" / f"{sample.key}.png", sample.instance.astype(np.uint16))


def total_samples(root: Path, splits: list[str] | None = None) -> int:
    manifest = Manifest.load(root)
    return sum(manifest.split(s).num_samples for s in splits or list(manifest.splits))
