"""Cityscapes as a DatasetSource: keys are the file stems `{city}_{seq}_{frame}`, read on demand.

Layout (as downloaded): SRC/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png and
SRC/gtFine/{split}/{city}/{stem}_gtFine_{labelIds.png,instanceIds.png,polygons.json}. A missing labelIds or
instanceIds PNG is rendered from polygons.json with cityscapesscripts' own conversion. Instance maps are kept
as stored (labelId * 1000 + k for thing objects, the labelId for stuff), in either label space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spadekit.plugin import (
    CITYSCAPES_TRAIN_IGNORE,
    Sample,
    SkipSample,
    SpadekitError,
    as_label_dtype,
    check_same_size,
    cityscapes_facts,
    cityscapes_trainid_facts,
    read_index_map,
    read_rgb,
)
from spadekit_plugins.cityscapes.spec import CityscapesOptions

SPLITS = ("train", "val")  # the test split's gtFine holds no usable labels
IMAGE_SUFFIX = "_leftImg8bit.png"
GT = "_gtFine_"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
POLYGON_SUFFIX = "_gtFine_polygons.json"
COLOUR_SUFFIX = "_gtFine_color.png"
TRAIN_IGNORE = CITYSCAPES_TRAIN_IGNORE
COLOUR_HINT = "use the *_gtFine_labelIds.png / *_gtFine_instanceIds.png files, not the *_gtFine_color.png visualisation"
LAYOUT = (
    "SRC/leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png and "
    "SRC/gtFine/{train,val}/<city>/<stem>_gtFine_labelIds.png"
)


def trainid_lut() -> tuple[np.ndarray, np.ndarray]:
    """labelId -> trainId lookup (trainId 255 or -1 -> 255), and which of the 256 labelIds the table knows."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, TRAIN_IGNORE, np.uint8)
    known = np.zeros(256, bool)
    for label in labels:
        if 0 <= label.id < 256:
            lut[label.id] = label.trainId if 0 <= label.trainId < TRAIN_IGNORE else TRAIN_IGNORE
            known[label.id] = True
    return lut, known


class CityscapesSource:
    def __init__(self, options: CityscapesOptions, src: Path):
        self.options = options
        self.src = Path(src)
        self.images = self.src / "leftImg8bit"
        self.gt = self.src / "gtFine"
        if not self.src.is_dir():
            raise SpadekitError(
                f"Cityscapes folder {self.src} does not exist; give --src the folder laid out as {LAYOUT}."
            )
        for folder in (self.images, self.gt):
            if not folder.is_dir():
                raise SpadekitError(
                    f"Cityscapes folder {folder} is missing; --src must be laid out as {LAYOUT} "
                    f"(unpack leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip into {self.src})."
                )
        self._splits = [s for s in SPLITS if (self.images / s).is_dir() and (self.gt / s).is_dir()]
        if not self._splits:
            raise SpadekitError(
                f"Cityscapes folder {self.src} has neither train nor val in both leftImg8bit/ and gtFine/; "
                f"it must be laid out as {LAYOUT}."
            )
        if options.label_space == "trainIds":
            self.facts = cityscapes_trainid_facts()
            self._lut, self._known = trainid_lut()
        else:
            self.facts = cityscapes_facts()
        self._index: dict[str, dict[str, str]] = {}  # split -> stem -> city

    def splits(self) -> list[str]:
        return list(self._splits)

    def _cities(self, split: str) -> dict[str, str]:
        if split not in self._index:
            stems: dict[str, str] = {}
            for path in (self.images / split).glob(f"*/*{IMAGE_SUFFIX}"):
                stems[path.name[: -len(IMAGE_SUFFIX)]] = path.parent.name
            for path in (self.gt / split).glob(f"*/*{GT}*"):
                if path.name.endswith((LABEL_SUFFIX, INSTANCE_SUFFIX, POLYGON_SUFFIX)):
                    stems.setdefault(path.name.split(GT)[0], path.parent.name)
            self._index[split] = stems
        return self._index[split]

    def keys(self, split: str) -> list[str]:
        # Keys from both sides, so that a label without its image is listed as skipped, not silently dropped.
        return sorted(self._cities(split))

    def load(self, split: str, key: str) -> Sample:
        city = self._cities(split)[key]
        image_path = self.images / split / city / f"{key}{IMAGE_SUFFIX}"
        gt = self.gt / split / city
        label_path, instance_path = gt / f"{key}{LABEL_SUFFIX}", gt / f"{key}{INSTANCE_SUFFIX}"
        polygon_path = gt / f"{key}{POLYGON_SUFFIX}"
        if not image_path.is_file():
            raise SkipSample(f"gtFine labels without their image: {image_path} is missing")
        has_polygons = polygon_path.is_file()
        if not label_path.is_file() and not has_polygons:
            colour = (gt / f"{key}{COLOUR_SUFFIX}").is_file()
            note = " (only a _gtFine_color.png, which is not a label map)" if colour else ""
            raise SkipSample(
                f"no gtFine labels for {image_path}: neither {label_path.name} nor {polygon_path.name}{note}"
            )
        if not instance_path.is_file() and not has_polygons:
            raise SkipSample(
                f"no gtFine instance map for {image_path}: neither {instance_path.name} nor {polygon_path.name}"
            )

        image = read_rgb(image_path)
        need_polygons = not (label_path.is_file() and instance_path.is_file())
        annotation = _read_polygons(polygon_path) if need_polygons else None
        if label_path.is_file():
            label = read_index_map(label_path, "labelIds", COLOUR_HINT)
        else:
            label = _render(annotation, polygon_path, "label")
        if instance_path.is_file():
            instance = read_index_map(instance_path, "instanceIds", COLOUR_HINT)
        else:
            instance = _render(annotation, polygon_path, "instance")
        instance = instance.astype(np.int32)

        check_same_size(image, image_path, label, label_path)
        check_same_size(image, image_path, instance, instance_path)
        label = self._to_label_space(label, label_path if label_path.is_file() else polygon_path)
        return Sample(key, image, label, instance)

    def _to_label_space(self, label: np.ndarray, path: Path) -> np.ndarray:
        if self.options.label_space == "labelIds":
            # Ids beyond 0..34 are left to prepare's check, which stops with a message naming the sample.
            return as_label_dtype(label)
        if int(label.max(initial=0)) > 255 or not self._known[label].all():
            bad = int(np.unique(label[(label > 255) | ~self._known[np.minimum(label, 255)]])[0])
            raise SpadekitError(
                f"Cityscapes label {path} holds id {bad}, which is no Cityscapes labelId; replace that file "
                "with the original *_gtFine_labelIds.png."
            )
        return self._lut[label]


def _read_polygons(path: Path):
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.helpers.labels import name2label

    annotation = Annotation()
    try:
        annotation.fromJsonText(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise SkipSample(f"{path} is not a valid Cityscapes polygons JSON ({type(err).__name__}: {err})") from None
    if annotation.imgWidth <= 0 or annotation.imgHeight <= 0:
        raise SkipSample(f"{path} gives an empty image size {annotation.imgWidth}x{annotation.imgHeight}")
    for obj in annotation.objects:
        # cityscapesscripts exits the process on an unknown label; check first ("cargroup" means "car").
        name = obj.label
        if name not in name2label and name.endswith("group"):
            name = name[: -len("group")]
        if not obj.deleted and name not in name2label:
            raise SkipSample(f"{path} has an object labelled {obj.label!r}, which is no Cityscapes class")
    return annotation


def _render(annotation, path: Path, what: str) -> np.ndarray:
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
    from cityscapesscripts.preparation.json2labelImg import createLabelImage

    try:
        image = createLabelImage(annotation, "ids") if what == "label" else createInstanceImage(annotation, "ids")
    except (ValueError, TypeError) as err:
        raise SkipSample(f"{path} has a polygon that cannot be drawn ({err})") from None
    return np.asarray(image).astype(np.int64)
