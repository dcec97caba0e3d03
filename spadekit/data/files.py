"""Reading a dataset's source files for a converter: photos, index label maps, and their pairing.

Every problem with one source file raises `SkipSample` with a sentence naming the file, so that prepare
lists it (or stops on it with `--strict`). Converters of all datasets use these, so the same fault reads
the same way whichever dataset it is in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from spadekit.data.sample import SkipSample

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # what counts as a photo
COLOUR_MODES = ("RGB", "RGBA", "LA", "CMYK", "YCbCr")


def read_rgb(path: Path) -> np.ndarray:
    """A photo (PNG, JPEG, ...) as uint8 H x W x 3; a corrupt or truncated file is skipped."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    except Image.DecompressionBombError as err:
        raise SkipSample(f"{path} declares more pixels than a photo has ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise SkipSample(f"{path} is not a readable image ({err})") from None


def read_index_map(path: Path, what: str = "label", colour_hint: str = "") -> np.ndarray:
    """A single-channel id map (8/16/32-bit grey or palette PNG) as int64 H x W.

    A colour image is skipped with a message saying that an id map was expected; `colour_hint` is added to it
    (for example, which option reads colour-coded labels).
    """
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            array = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as err:
        raise SkipSample(f"{path} is not a readable image ({err})") from None
    if mode in COLOUR_MODES or array.ndim != 2:
        hint = f"; {colour_hint}" if colour_hint else ""
        raise SkipSample(
            f"{path} is a colour image (mode {mode}), but {what} files must be single-channel id maps{hint}"
        )
    return array.astype(np.int64)


def require_pair(image_path: Path, label_path: Path, what: str) -> None:
    """Skip a sample whose image or whose `what` (e.g. "annotation") file is missing, naming the absent one."""
    if not Path(image_path).is_file():
        raise SkipSample(f"{what} without its image: {image_path} is missing")
    if not Path(label_path).is_file():
        raise SkipSample(f"no {what} for {image_path}: {label_path} is missing")


def check_same_size(image: np.ndarray, image_path: Path, array: np.ndarray, array_path: Path) -> None:
    """Skip a sample whose label (or instance) map is not the size of its image."""
    h, w = image.shape[:2]
    if array.shape[:2] != (h, w):
        raise SkipSample(
            f"{Path(array_path).name} is {array.shape[1]}x{array.shape[0]} but its image "
            f"{Path(image_path).name} is {w}x{h}"
        )


def as_label_dtype(label: np.ndarray, path: Path | None = None) -> np.ndarray:
    """uint8 when every id fits, else uint16 (the two label types a shard stores); larger ids are skipped."""
    top = int(label.max(initial=0))
    if top > np.iinfo(np.uint16).max:
        raise SkipSample(f"{path or 'a label map'} holds id {top}, which no label space here has (ids fit 16 bits)")
    return label.astype(np.uint8) if top <= 255 else label.astype(np.uint16)
