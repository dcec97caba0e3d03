"""COCO instance maps, drawn by pycocotools from annotations/instances_{split}2017.json.

Id scheme (unique per object, never a class id, fits the 16-bit PNGs `spadekit data export` writes): every
pixel starts as its stuffthingmaps label value (stuff 91..181, unlabeled 255, and a thing class 0..90 where no
annotation covers it); the k-th annotation of the image, counting from 0 in annotation-id order, gets 256 + k.
Every annotation is drawn, polygons and RLE alike (crowd regions, with uncompressed or compressed counts; the
official SPADE script drops RLE), by pycocotools' own `COCO.annToMask`. Painting order: larger objects (more
mask pixels) first, ties in annotation-id order, so that an object lying on a larger one stays visible.

The JSON is large (448 MB for train2017, several GB once parsed): `InstanceIndex` reads it on the first
instance map asked for and keeps it, so each process (each of prepare's workers holds its own copy) parses it
once per split, and a run that builds no instance maps never reads it.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from spadekit.plugin import SkipSample, SpadekitError

FIRST_OBJECT_ID = 256  # above every label value (0..181, 255)
MAX_OBJECT_ID = 65535  # instance maps are exported as 16-bit PNGs
REDOWNLOAD = "re-download and unpack annotations_trainval2017.zip"


class InstanceIndex:
    """The instance annotations of one split, read on first use and kept."""

    def __init__(self, path: Path):
        self.path = path
        self._coco = None
        self._image_ids: dict[str, int] = {}  # file stem -> COCO image id

    def instance_map(self, image_path: Path, label: np.ndarray) -> np.ndarray:
        """The int32 instance map of the image at `image_path`, whose label map is `label`."""
        coco = self._load()
        image_id = self._image_ids.get(image_path.stem)
        if image_id is None:
            raise SkipSample(
                f"{image_path.name} is not listed in {self.path}; is that the annotation file of its split?"
            )
        self._check_size(coco.imgs[image_id], image_path, label.shape)
        annotations = sorted(coco.imgToAnns[image_id], key=lambda ann: ann["id"])
        if FIRST_OBJECT_ID + len(annotations) - 1 > MAX_OBJECT_ID:
            raise SkipSample(
                f"{image_path.name} has {len(annotations)} annotations in {self.path}, too many for 16-bit ids"
            )
        masks = [self._mask(coco, ann, label.shape) for ann in annotations]
        instance = label.astype(np.int32)
        for k in sorted(range(len(masks)), key=lambda k: -int(masks[k].sum())):  # stable: ties stay in id order
            instance[masks[k] > 0] = FIRST_OBJECT_ID + k
        return instance

    def _load(self):
        if self._coco is None:
            self._coco, self._image_ids = read_instances(self.path)
        return self._coco

    def _check_size(self, info: dict, image_path: Path, shape: tuple[int, int]) -> None:
        h, w = shape
        if (info.get("height"), info.get("width")) != (h, w):
            raise SkipSample(
                f"{self.path} gives {image_path.name} as {info.get('width')}x{info.get('height')} but the file is "
                f"{w}x{h}; use the original image or the matching annotation file"
            )

    def _mask(self, coco, annotation: dict, shape: tuple[int, int]) -> np.ndarray:
        try:
            mask = coco.annToMask(annotation)
        except Exception as err:  # pycocotools raises bare Exception (and KeyError, TypeError) on odd segmentations
            raise SkipSample(
                f"annotation {annotation.get('id')} in {self.path} has a segmentation pycocotools cannot draw "
                f"({type(err).__name__}: {err}); {REDOWNLOAD}"
            ) from None
        if mask.shape != shape:
            raise SkipSample(
                f"annotation {annotation.get('id')} in {self.path} is an RLE of {mask.shape[1]}x{mask.shape[0]} "
                f"but its image is {shape[1]}x{shape[0]}; {REDOWNLOAD}"
            )
        return mask


def read_instances(path: Path):
    """Parse a COCO instances JSON into a pycocotools `COCO` index and a file stem -> image id table."""
    from pycocotools.coco import COCO

    try:
        with path.open("rb") as f:
            data = json.load(f)
    except OSError as err:
        raise SpadekitError(f"Cannot read {path} ({err}); check the file or {REDOWNLOAD}.") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise SpadekitError(f"{path} is truncated or not valid JSON ({err}); {REDOWNLOAD}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or "annotations" not in data:
        raise SpadekitError(f"{path} is not a COCO instances file (no images and annotations lists); {REDOWNLOAD}.")
    coco = COCO()
    coco.dataset = data
    try:
        image_ids = {Path(image["file_name"]).stem: image["id"] for image in data["images"]}
        with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress lines
            coco.createIndex()
    except (KeyError, TypeError, AttributeError) as err:
        raise SpadekitError(
            f"{path} is not a well-formed COCO instances file ({type(err).__name__}: {err}); {REDOWNLOAD}."
        ) from None
    return coco, image_ids
