"""The image folders a bench writes: generated images in the run directory, the real set in the cache.

Both are written into a temporary sibling folder and renamed into place when complete, so a folder that
exists is whole (an interrupted bench leaves no half set behind that FID would read).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from spadekit.fileio import atomic_write_text, cache_dir


def image_name(index: int, key: str) -> str:
    """`000012_<key>.png`: sorted like the split, readable, safe as a file name."""
    return f"{index:06d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', key)[:80]}.png"


class ImageFolder:
    """A folder of PNG images, filled in a temporary folder and committed whole."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")

    @property
    def complete(self) -> bool:
        return self.path.is_dir()

    def start(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True)

    def write(self, names: list[str], images: Tensor) -> None:
        """uint8 B x 3 x H x W images, one PNG per name."""
        for name, image in zip(names, images.permute(0, 2, 3, 1).numpy(), strict=True):
            Image.fromarray(np.ascontiguousarray(image)).save(self._tmp / name)

    def commit(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._tmp.rename(self.path)


class RealSet:
    """The cached real side of a protocol: images at the generation resolution, and segmentation scores of
    them per way of segmenting (`Protocol.segmentation_key`: the reference a generator's scores are read against)."""

    def __init__(self, key: str):
        self.root = cache_dir() / "bench" / f"real-{key}"
        self.images = ImageFolder(self.root / "images")

    def _scores_path(self, key: str) -> Path:
        return self.root / f"segmentation-{key}.json"

    def cached_scores(self, key: str) -> dict | None:
        path = self._scores_path(key)
        return json.loads(path.read_text()) if path.is_file() else None

    def save_scores(self, key: str, scores: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self._scores_path(key), json.dumps(scores, indent=2) + "\n")
