"""`spadekit data verify`: is every shard the one the manifest describes, and does every record decode?"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from spadekit.data.manifest import SCHEMA_VERSION, DatasetFacts, Manifest, ShardInfo
from spadekit.data.shards import ShardFile
from spadekit.fileio import sha256_file


@dataclass
class ShardCheck:
    split: str
    file: str
    problem: str | None  # None when the shard is sound

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(root: Path) -> Iterator[ShardCheck]:
    """Check each shard of the manifest in turn (checksum, schema, every record); yields one result each."""
    root = Path(root)
    manifest = Manifest.load(root)
    for split, info in manifest.splits.items():
        for shard in info.shards:
            problem = _problem(root, split, shard, manifest.dataset)
            if problem is None and not info.num_samples:  # prepare refuses such a split; no reader can use it
                problem = f"split {split!r} holds no samples (every source file was skipped); prepare it again"
            yield ShardCheck(split, shard.file, problem)


def _problem(root: Path, split: str, shard: ShardInfo, facts: DatasetFacts) -> str | None:
    path = root / shard.file
    if not path.is_file():
        return "file is missing"
    if sha256_file(path) != shard.sha256:
        return "checksum differs from the manifest (the file was changed or damaged)"
    try:
        return _content_problem(path, split, shard, facts)
    except (OSError, KeyError, ValueError) as err:
        return f"cannot be read ({type(err).__name__}: {err})"


def _content_problem(path: Path, split: str, shard: ShardInfo, facts: DatasetFacts) -> str | None:
    with h5py.File(path, "r") as f:
        if f.attrs.get("schema_version") != SCHEMA_VERSION or f.attrs.get("split") != split:
            found = f"{f.attrs.get('schema_version')!r}/{f.attrs.get('split')!r}"
            return f"schema/split {found} is not {SCHEMA_VERSION}/{split!r}"
        sizes = f["shapes"][()].prod(axis=1) if len(f["shapes"]) else np.zeros(0, np.int64)
        for name, per_pixel in (("image", 3), ("label", 1), ("instance", 1)):
            if name not in f:
                continue
            offsets = f[f"{name}_offsets"][()]
            if not np.array_equal(np.diff(offsets), sizes * per_pixel) or offsets[-1] != len(f[name]):
                return f"{name} offsets do not match the stored shapes"
        if ("instance" in f) != facts.has_instances and len(f["keys"]):  # an empty shard has no maps to hold
            return "instance maps are present/absent contrary to the manifest"
    reader = ShardFile(path)
    try:
        if len(reader) != shard.num_samples:
            return f"holds {len(reader)} samples, the manifest says {shard.num_samples}"
        for i in range(len(reader)):
            problem = _record_problem(reader, i, facts)
            if problem:
                return problem
    finally:
        reader.close()
    return None


def _record_problem(reader: ShardFile, i: int, facts: DatasetFacts) -> str | None:
    sample = reader.read(i)
    sample.check()
    bad = facts.invalid_label_ids(sample.label)
    if bad:
        return f"sample {sample.key!r} has label id {bad[0]} outside the {facts.label_nc} classes"
    return None
