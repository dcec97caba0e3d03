"""`spadekit data show`: a PNG grid, one row per sample: image | coloured label | instance edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from spadekit.data.edges import instance_edges_np
from spadekit.data.manifest import Manifest
from spadekit.data.palette import colourize
from spadekit.data.reader import SplitReader
from spadekit.data.sample import Sample
from spadekit.data.writes import file_in_the_way, writing
from spadekit.errors import SpadekitError
from spadekit.imageio import save_png

GAP = 4  # pixels between tiles


def show_grid(root: Path, out: Path, split: str | None = None, n: int = 16, height: int = 128) -> int:
    """Write the grid of the first `n` samples of `split` (default: the first split); returns rows written."""
    out = Path(out)
    if out.is_dir():
        raise SpadekitError(f"--out {out} is a folder; give the PNG file to write, e.g. {out / 'grid.png'}.")
    if blocker := file_in_the_way(out):
        raise SpadekitError(f"--out {out}: {blocker} is a file, not a folder; choose another --out.")
    manifest = Manifest.load(root)
    reader = SplitReader(root, split or next(iter(manifest.splits)), manifest)
    if not len(reader):
        others = ", ".join(s for s in manifest.splits if s != reader.split and manifest.splits[s].num_samples)
        raise SpadekitError(
            f"Split {reader.split!r} of {root} holds no samples; show another with --split ({others or 'none'})."
        )
    rows = [_row(reader.read(i), reader, height) for i in range(min(n, len(reader)))]
    width = max(r.shape[1] for r in rows)
    canvas = np.full((len(rows) * (height + GAP) - GAP, width, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        canvas[i * (height + GAP) : i * (height + GAP) + height, : row.shape[1]] = row
    with writing(out, "choose a writable --out"):
        save_png(out, canvas)
    return len(rows)


def _row(sample: Sample, reader: SplitReader, height: int) -> np.ndarray:
    no_instances = np.zeros(sample.label.shape, bool)
    edges = no_instances if sample.instance is None else instance_edges_np(sample.instance) > 0
    tiles = [sample.image, colourize(sample.label, reader.facts), np.repeat(edges[..., None] * 255, 3, axis=2)]
    scaled = [_fit_height(t.astype(np.uint8), height) for t in tiles]
    gap = np.full((height, GAP, 3), 255, np.uint8)
    return np.concatenate([scaled[0], gap, scaled[1], gap, scaled[2]], axis=1)


def _fit_height(tile: np.ndarray, height: int) -> np.ndarray:
    h, w = tile.shape[:2]
    size = (max(1, round(w * height / h)), height)
    return np.asarray(Image.fromarray(tile).resize(size, Image.NEAREST))
