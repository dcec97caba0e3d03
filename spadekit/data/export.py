"""`spadekit data export`: shards back to PNG files, exactly the stored pixels.

Layout: OUT/<split>/images/<key>.png (RGB), labels/<key>.png (8-bit, or 16-bit when ids exceed 255),
instances/<key>.png (16-bit), the layout of SPADE's custom dataset mode.

All or nothing: every shard is checked against its checksum before the first file is written, the files go
to a hidden staging folder inside OUT, and each OUT/<split> appears by a rename once every sample is
written; a failure part-way (a full disk, an instance id too large for PNG) removes what was staged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from spadekit.data.manifest import Manifest
from spadekit.data.reader import SplitReader
from spadekit.data.writes import file_in_the_way, first_missing, writing
from spadekit.errors import SpadekitError
from spadekit.imageio import save_png


def export(root: Path, out: Path, splits: list[str] | None = None, on_sample: Callable[[], None] | None = None) -> int:
    """Write every sample of `splits` (default: all) under `out`; returns the number of samples."""
    manifest = Manifest.load(root)
    readers = [SplitReader(root, split, manifest) for split in splits or list(manifest.splits)]
    out = Path(out)
    _check_out(out, [r.split for r in readers])
    for reader in readers:
        reader.verify()
    created = first_missing(out)
    staging, moved = out / f".export.tmp{os.getpid()}", []
    try:
        with writing(out, "free space or choose another --out"):
            count = sum(_export_split(reader, staging / reader.split, on_sample) for reader in readers)
            for reader in readers:
                os.replace(staging / reader.split, out / reader.split)
                moved.append(out / reader.split)
            staging.rmdir()
    except BaseException:
        for folder in [created or staging, *moved]:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return count


def _check_out(out: Path, splits: list[str]) -> None:
    """Refuse, before writing anything, an --out that is a file or that already holds one of the splits."""
    blocker = out if out.exists() and not out.is_dir() else file_in_the_way(out)
    if blocker:
        raise SpadekitError(f"--out {out}: {blocker} is a file; give a folder (new, or without {'/'.join(splits)}).")
    for split in splits:
        if (out / split).exists():
            raise SpadekitError(
                f"{out / split} already exists; delete it or choose another --out (export does not mix its "
                "files with older ones)."
            )


def _export_split(reader: SplitReader, folder: Path, on_sample: Callable[[], None] | None) -> int:
    folder.mkdir(parents=True)  # the split's folder exists even when it holds no samples
    for i in range(len(reader)):
        _export_sample(reader, i, folder)
        if on_sample:
            on_sample()
    return len(reader)


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
