"""`spadekit segmenter predict`: label PNGs for photos, in the label space of the segmenter's dataset.

Each photo's prediction is written at the photo's own resolution to `OUT/<stem>.png`, holding the ids that
the annotation files of the segmenter's training set hold (class + the segmenter's `file_id_offset`: ADE20K's
1..150 for a segmenter of its 150 classes), 8-bit when they fit, else 16-bit. Photos of one size are batched
together; a photo that cannot be read is one sentence naming it, before anything is predicted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spadekit.data.files import PHOTO_SUFFIXES, as_label_dtype, read_rgb
from spadekit.data.sample import SkipSample
from spadekit.device import autocast
from spadekit.errors import SpadekitError
from spadekit.imageio import save_png
from spadekit.masks import MAX_STYLE_PIXELS
from spadekit.segmenter import Segmenter

MAX_PHOTO_PIXELS = MAX_STYLE_PIXELS  # 40 MP: a 2048x1024 Cityscapes photo is 2 MP, a 24 MP camera's fits


@dataclass(frozen=True)
class PredictJob:
    inputs: list[Path]  # photos and folders of photos
    out: Path
    device: torch.device
    precision: str = "fp32"
    batch_size: int = 4


def photo_files(inputs: list[Path]) -> list[Path]:
    """The photos named, folders expanded to their photos (sorted); two photos with one stem are refused,
    since both would write OUT/<stem>.png."""
    photos: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise SpadekitError(f"Folder {path} holds no photos ({', '.join(PHOTO_SUFFIXES)}); check the path.")
            photos.extend(found)
        elif path.is_file():
            photos.append(path)
        else:
            raise SpadekitError(f"{path} does not exist; give photos or folders of photos.")
    seen: dict[str, Path] = {}
    for photo in photos:
        if photo.stem in seen:
            raise SpadekitError(f"{seen[photo.stem]} and {photo} would both be written as {photo.stem}.png; "
                                "predict them into different --out folders.")
        seen[photo.stem] = photo
    return photos


def group_by_size(photos: list[Path]) -> list[list[Path]]:
    """The photos grouped by size (read from their headers: an unreadable file is named before any work)."""
    groups: dict[tuple[int, int], list[Path]] = defaultdict(list)
    for photo in photos:
        groups[_size_of(photo)].append(photo)
    return list(groups.values())


def predict_files(segmenter: Segmenter, job: PredictJob, advance: Callable[[int], None] = lambda n: None) -> int:
    """Predict every photo of `job` into `job.out`, a batch of photos of one size at a time; the number of files
    written."""
    photos = photo_files(job.inputs)
    groups = group_by_size(photos)
    job.out.mkdir(parents=True, exist_ok=True)
    offset = getattr(segmenter, "file_id_offset", 0)
    for group in groups:
        for start in range(0, len(group), job.batch_size):
            paths = group[start : start + job.batch_size]
            ids = _predict(segmenter, [_read(path) for path in paths], job) + offset
            for path, label in zip(paths, ids, strict=True):
                save_png(job.out / f"{path.stem}.png", as_label_dtype(label))
            advance(len(paths))
    return len(photos)


def _predict(segmenter: Segmenter, images: list[np.ndarray], job: PredictJob) -> np.ndarray:
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(job.device)
    with torch.no_grad(), autocast(job.precision, job.device):
        return segmenter.predict(pixels.float() / 255).cpu().numpy()


def _size_of(path: Path) -> tuple[int, int]:
    """The photo's size from its header; a file declaring more than MAX_PHOTO_PIXELS is refused before decoding."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise SpadekitError(f"{path} is not a readable image ({err}); remove it or give a JPEG or PNG.") from None
    if width * height > MAX_PHOTO_PIXELS:
        raise SpadekitError(f"{path} is {width}x{height} pixels, over {MAX_PHOTO_PIXELS / 1e6:.0f} megapixels; "
                            "resize it first.")
    return width, height


def _read(path: Path) -> np.ndarray:
    try:
        return read_rgb(path)
    except SkipSample as err:
        raise SpadekitError(f"{err}; remove it or give a JPEG or PNG.") from None
