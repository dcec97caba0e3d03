"""PNG files written atomically, with PIL choosing the mode from the array's dtype."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from spadekit.fileio import atomic_write_bytes


def save_png(path: Path, array: np.ndarray) -> None:
    """uint8 HxWx3 -> RGB, uint8 HxW -> L (8 bit), uint16 HxW -> I;16 (16 bit); pixels stored exactly."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
