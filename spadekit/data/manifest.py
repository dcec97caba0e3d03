"""The manifest of a prepared dataset: dataset facts and the list of shards with their checksums.

`SHARDS/manifest.json` is written last, when every shard of every split exists, so its presence means the
preparation finished. A trainer reads the dataset facts (label count, don't-care id, instance maps) from
here, never from a recipe.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_text

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


class DatasetFacts(BaseModel):
    """What a generator and an evaluator need to know about a label space."""

    model_config = ConfigDict(extra="forbid")

    name: str
    class_names: list[str]
    palette: list[tuple[int, int, int]]  # RGB colour of each class id, same length as class_names
    dontcare_id: int | None = None  # label id that means "unlabelled" (e.g. 255 in COCO-Stuff), if any
    has_instances: bool = False
    thing_ids: list[int] = Field(default_factory=list)  # classes whose objects get their own instance id

    @property
    def label_nc(self) -> int:
        """Number of semantic classes, not counting the don't-care label (SPADE's `label_nc`)."""
        return len(self.class_names)

    def invalid_label_ids(self, label: np.ndarray) -> list[int]:
        """The ids in a label map that are neither a class nor the don't-care id (usually none)."""
        if label.size == 0 or int(label.max()) < self.label_nc:  # the common case costs one max()
            return []
        return [int(i) for i in np.unique(label[label >= self.label_nc]) if i != self.dontcare_id]


class ShardInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str  # relative to the shards folder
    num_samples: int
    sha256: str


class SplitInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_samples: int
    shards: list[ShardInfo]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    dataset: DatasetFacts
    resize: tuple[int, int] | None = None  # (width, height) applied at prepare time, or native size
    splits: dict[str, SplitInfo]

    def save(self, root: Path) -> None:
        atomic_write_text(root / MANIFEST_NAME, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = Path(root) / MANIFEST_NAME
        if not path.is_file():
            hint = (
                "the preparation did not finish; re-run `spadekit prepare ... --resume`"
                if (Path(root) / ".parts").is_dir()
                else "point to the --out folder of `spadekit prepare`"
            )
            raise SpadekitError(f"{path} does not exist: {hint}.")
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise SpadekitError(f"{path} is not valid JSON ({err}); re-run `spadekit prepare`.") from None
        version = raw.get("schema_version") if isinstance(raw, dict) else None
        if version != SCHEMA_VERSION:
            raise SpadekitError(
                f"{path} has schema version {version!r}, this spadekit reads {SCHEMA_VERSION}; "
                "re-run `spadekit prepare` with this version."
            )
        try:
            return cls.model_validate(raw)
        except ValueError as err:
            raise SpadekitError(f"{path} is damaged ({str(err).splitlines()[0]}); re-run `spadekit prepare`.") from None

    def split(self, name: str) -> SplitInfo:
        if name not in self.splits:
            raise SpadekitError(f"Split {name!r} is not in this dataset; it has: {', '.join(self.splits)}.")
        return self.splits[name]
