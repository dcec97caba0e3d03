"""Painted masks for synthesis: an index PNG or a colour PNG in the dataset's palette, to class ids.

- Index masks (8/16-bit grey or palette-mode PNG): each pixel's value is its class id; the dataset's
  don't-care id is allowed.
- Colour masks (RGB/RGBA): each colour must be one of the run's palette (`RunInfo.facts.palette`; black is
  the don't-care colour when the dataset has one). A colour that is not there, such as the anti-aliased edge
  of a brush, is an error naming the colour and how many pixels have it.
Masks of any size are resized (nearest, as Pillow) to the generator's size; instance maps likewise.
Every file's size is checked on its header, before a pixel is decoded: a mask or instance map of more than
MAX_MASK_PIXELS, or a style photo of more than MAX_STYLE_PIXELS, is refused (a few hundred bytes of PNG may
declare 30000x30000 pixels, gigabytes once decoded).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from spadekit.data.files import COLOUR_MODES
from spadekit.data.manifest import DatasetFacts
from spadekit.data.palette import DONTCARE_COLOUR, UnknownColours, decode_colours
from spadekit.data.transforms import nearest_index
from spadekit.errors import SpadekitError

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif")
MAX_MASK_PIXELS = 4096 * 4096  # ids become int64 and colours are matched: ~1 GB of work at this size
MAX_STYLE_PIXELS = 40_000_000  # a photo is only resized to the encoder's 256x256; 40 MP is a large camera's


def read_mask(path: Path, facts: DatasetFacts) -> np.ndarray:
    """Class ids (int64 H x W) of an index or colour mask; any problem is one sentence naming the file."""
    path = Path(path)
    return mask_ids(open_image(path, "mask"), facts, f"Mask {path}")


def mask_ids(image: Image.Image, facts: DatasetFacts, where: str) -> np.ndarray:
    """Class ids (int64 H x W) of a decoded index or colour mask; `where` names it in errors ("Mask a.png")."""
    if image.mode in COLOUR_MODES:
        return _decode_colours(np.asarray(image.convert("RGB")), where, facts)
    ids = np.asarray(image).astype(np.int64)
    bad = facts.invalid_label_ids(ids)
    if bad:
        dontcare = f" or the don't-care id {facts.dontcare_id}" if facts.dontcare_id is not None else ""
        raise SpadekitError(
            f"{where} holds class id {bad[0]}, but the run's dataset {facts.name} has ids 0..{facts.label_nc - 1}"
            f"{dontcare}; paint with the run's classes (`spadekit plugins`, run.json lists them)."
        )
    return ids


def read_region(spec: str, labels: np.ndarray, facts: DatasetFacts, where: str) -> np.ndarray:
    """The region to resample in the label map `labels` of `where` (a mask file): a mask file of the same size
    (its non-zero pixels), else a class of the run's dataset by name (any case) or id. Boolean H x W."""
    path = Path(spec)
    if path.is_file():
        region = np.asarray(open_image(path, "region mask").convert("L")) > 0
        if region.shape != labels.shape:
            raise SpadekitError(f"Region mask {path} is {region.shape[1]}x{region.shape[0]}, but {where} is "
                                f"{labels.shape[1]}x{labels.shape[0]}; paint the region at the mask's size.")
    else:
        names = {name.lower(): i for i, name in enumerate(facts.class_names)}
        class_id = int(spec) if spec.isdigit() else names.get(spec.lower())
        if class_id is None or class_id >= facts.label_nc:
            raise SpadekitError(f"--resample-region {spec!r} is neither a file nor a class of {facts.name} (by name "
                                "or id); give a mask file or one of the classes `spadekit plugins` lists.")
        region = labels == class_id
    if not region.any():
        raise SpadekitError(f"--resample-region {spec!r} covers no pixel of {where}; pick a class it shows or "
                            "paint the region.")
    return region


def read_instance(path: Path) -> np.ndarray:
    """An instance map (one id per object; any integer PNG) as int64 H x W."""
    image = open_image(Path(path), "instance map")
    if image.mode in COLOUR_MODES:
        raise SpadekitError(f"Instance map {path} is a colour image (mode {image.mode}); give a single-channel "
                            "PNG with one integer id per object.")
    return np.asarray(image).astype(np.int64)


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H x W map to (height, width) = size, nearest neighbour exactly as Pillow's NEAREST."""
    h, w = array.shape
    return array[nearest_index(h, size[0])][:, nearest_index(w, size[1])]


def mask_files(path: Path) -> list[Path]:
    """The masks of a folder (sorted), or the one file given."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in MASK_SUFFIXES and p.is_file())
        if not files:
            raise SpadekitError(f"Folder {path} holds no mask images ({', '.join(MASK_SUFFIXES)}); paint some first.")
        return files
    if not path.is_file():
        raise SpadekitError(f"Mask {path} does not exist; give a PNG mask or a folder of them.")
    return [path]


def read_style_photo(path: Path) -> np.ndarray:
    """A style photo (JPEG, PNG, ...) as uint8 H x W x 3; refused by its header when over MAX_STYLE_PIXELS."""
    image = open_image(Path(path), "style photo", MAX_STYLE_PIXELS)
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def open_image(path: Path, what: str, max_pixels: int = MAX_MASK_PIXELS) -> Image.Image:
    """The decoded image at `path`; its size is checked on the header first, so that a small file declaring a
    huge image is one sentence, not gigabytes of memory (or Pillow's DecompressionBombError)."""
    path = Path(path)
    if not path.is_file():
        raise SpadekitError(f"{what.capitalize()} {path} does not exist; check the path.")
    try:
        with warnings.catch_warnings():  # Pillow warns above 89 MP; the limit below is ours and lower
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_pixels(path, what, image.size, max_pixels)
                image.load()
                return image
    except Image.DecompressionBombError:
        raise SpadekitError(f"{what.capitalize()} {path} declares over {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} "
                            f"megapixels; {_smaller(max_pixels)}.") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise SpadekitError(f"{what.capitalize()} {path} is not a readable image ({err}); save it again as PNG.")\
            from None


def _check_pixels(path: Path, what: str, size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise SpadekitError(f"{what.capitalize()} {path} is {size[0]}x{size[1]} pixels; {_smaller(max_pixels)}.")


def _smaller(max_pixels: int) -> str:
    return f"give one of at most {max_pixels / 1e6:.1f} megapixels (it is resized to the model's input anyway)"


def _decode_colours(rgb: np.ndarray, where: str, facts: DatasetFacts) -> np.ndarray:
    colours, ids = [tuple(c) for c in facts.palette], list(range(facts.label_nc))
    if facts.dontcare_id is not None and DONTCARE_COLOUR not in colours:
        colours.append(DONTCARE_COLOUR)
        ids.append(facts.dontcare_id)
    try:
        return decode_colours(rgb, colours, ids)
    except UnknownColours as unknown:
        raise SpadekitError(
            f"{where} has colours that are not in the {facts.name} palette: {unknown.describe()}; paint with "
            "the palette's colours only (no anti-aliasing), or save the mask as an index PNG."
        ) from None
