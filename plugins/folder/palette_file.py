"""The palette file of colour-coded label PNGs, and turning such a PNG into class ids.

Format: a text file, one class per line as `R G B name` (three values 0..255, then the class name, which may
hold spaces); entry i is class id i. Blank lines and lines starting with `#` are skipped. The one line named
`dontcare` is no class: it gives the colour of unlabelled pixels, which get the `dontcare` id. Example:

    # R G B name
    70 130 180 sky
    107 142 35 tree
    0 0 0 dontcare
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spadekit.plugin import SkipSample, SpadekitError, UnknownColours, decode_colours

DONTCARE_NAME = "dontcare"
FORMAT = "one line `R G B name` per class id, e.g. `70 130 180 sky`"


@dataclass(frozen=True)
class Palette:
    path: Path
    names: list[str]
    colours: list[tuple[int, int, int]]
    dontcare_colour: tuple[int, int, int] | None = None

    def decode(self, rgb: np.ndarray, label_path: Path, dontcare_id: int | None) -> np.ndarray:
        """uint8 H x W x 3 colours -> int64 class ids; a colour not in the palette makes the sample unusable."""
        colours, ids = list(self.colours), list(range(len(self.colours)))
        if self.dontcare_colour is not None:
            colours.append(self.dontcare_colour)
            ids.append(dontcare_id)
        try:
            return decode_colours(rgb, colours, ids)
        except UnknownColours as unknown:
            raise SkipSample(
                f"{label_path} has colours that palette {self.path} does not list: {unknown.describe()}; add a "
                "line `R G B name` for each to the palette file"
            ) from None


def read_palette(path: Path) -> Palette:
    """Read a palette file (format in the module docstring); a malformed one names the line."""
    path = Path(path)
    if not path.is_file():
        raise SpadekitError(f"Palette file {path} does not exist; fix --set palette=PATH ({FORMAT}).")
    names, colours, dontcare = [], [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        colour, name = _parse_line(line, path, number)
        if colour in colours or colour == dontcare:
            raise SpadekitError(f"Line {number} of {path} repeats colour {colour}; give each class its own colour.")
        if name == DONTCARE_NAME and dontcare is not None:
            raise SpadekitError(f"Line {number} of {path} is a second `dontcare` line; keep one.")
        if name == DONTCARE_NAME:
            dontcare = colour
        else:
            names.append(name)
            colours.append(colour)
    if not names:
        raise SpadekitError(f"Palette file {path} lists no class; write {FORMAT}.")
    return Palette(path, names, colours, dontcare)


def _parse_line(line: str, path: Path, number: int) -> tuple[tuple[int, int, int], str]:
    parts = line.split(maxsplit=3)
    try:
        values = tuple(int(v) for v in parts[:3])
    except ValueError:
        values = ()
    if len(parts) < 4 or len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise SpadekitError(f"Line {number} of {path} is {line.strip()!r}, not `R G B name`; write {FORMAT}.")
    return values, parts[3].strip()
