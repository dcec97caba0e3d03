"""Colour-coded label maps for people to look at."""

from __future__ import annotations

import numpy as np

from spadekit.data.manifest import DatasetFacts

DONTCARE_COLOUR = (0, 0, 0)


def colour_lut(facts: DatasetFacts) -> np.ndarray:
    """A 65536 x 3 lookup table: class id -> RGB (the don't-care id and unknown ids are black)."""
    lut = np.zeros((1 << 16, 3), np.uint8)
    lut[: len(facts.palette)] = np.asarray(facts.palette, np.uint8).reshape(-1, 3)
    if facts.dontcare_id is not None:
        lut[facts.dontcare_id] = DONTCARE_COLOUR
    return lut


def colourize(label: np.ndarray, facts: DatasetFacts) -> np.ndarray:
    """uint8 H x W x 3 image of a label map in the dataset's palette."""
    return colour_lut(facts)[label.astype(np.int64)]
