"""One record of a dataset: what a converter produces and what a shard stores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sample:
    """An image with its label map and optional instance map, named by its source file stem.

    image: uint8 H x W x 3 (RGB); label: uint8 or uint16 H x W of class ids (the dataset's don't-care id
    allowed); instance: int32 H x W or None. Stuff pixels of an instance map conventionally hold their class
    id and thing pixels a per-object id, so that edges (see spadekit.data.edges) fall on both kinds of border.
    """

    key: str
    image: np.ndarray
    label: np.ndarray
    instance: np.ndarray | None = None

    def check(self) -> None:
        """Raise ValueError when arrays disagree in shape or type (a converter bug, not a user error)."""
        h, w = self.label.shape
        if self.image.shape != (h, w, 3) or self.image.dtype != np.uint8:
            raise ValueError(f"sample {self.key}: image {self.image.shape} {self.image.dtype} vs label {h}x{w}")
        if self.label.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"sample {self.key}: label dtype {self.label.dtype} is not uint8/uint16")
        if self.instance is not None and (self.instance.shape != (h, w) or self.instance.dtype != np.int32):
            raise ValueError(f"sample {self.key}: instance {self.instance.shape} {self.instance.dtype}")


class SkipSample(Exception):
    """Raised by a converter for a source file it cannot use (the message says why); prepare lists it."""
