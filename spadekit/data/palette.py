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


class UnknownColours(ValueError):
    """Colours of a colour-coded label map that the palette does not list, most frequent first."""

    def __init__(self, colours: list[tuple[tuple[int, int, int], int]]):
        super().__init__(self.describe_list(colours))
        self.colours = colours

    @staticmethod
    def describe_list(colours: list[tuple[tuple[int, int, int], int]], limit: int = 3) -> str:
        named = ", ".join(f"{rgb} in {count} pixels" for rgb, count in colours[:limit])
        return named + (f" and {len(colours) - limit} more" if len(colours) > limit else "")

    def describe(self) -> str:
        return self.describe_list(self.colours)


def decode_colours(rgb: np.ndarray, colours: list[tuple[int, int, int]], ids: list[int]) -> np.ndarray:
    """uint8 H x W x 3 colours -> int64 ids (`colours[i]` means `ids[i]`); UnknownColours if any is unlisted."""
    table = np.array([_code(c) for c in colours], np.int64)
    order = np.argsort(table)
    table, values = table[order], np.array(ids, np.int64)[order]
    codes = _code(rgb.astype(np.int64).transpose(2, 0, 1))
    where = np.minimum(np.searchsorted(table, codes), len(table) - 1)
    known = table[where] == codes
    if not known.all():
        unknown, counts = np.unique(codes[~known], return_counts=True)
        most = np.argsort(-counts, kind="stable")
        raise UnknownColours([(_rgb(int(unknown[i])), int(counts[i])) for i in most])
    return values[where]


def _code(rgb) -> np.ndarray | int:
    """One integer per colour: R * 65536 + G * 256 + B."""
    return rgb[0] * 65536 + rgb[1] * 256 + rgb[2]


def _rgb(code: int) -> tuple[int, int, int]:
    return (code >> 16, (code >> 8) & 255, code & 255)
