"""COCO-Stuff 2017 as a DatasetSource: keys are the file stems (e.g. 000000000139), read on demand.

Layout (as downloaded and unpacked into SRC):

    SRC/train2017/<stem>.jpg, SRC/val2017/<stem>.jpg                   train2017.zip, val2017.zip
    SRC/stuffthingmaps_trainval2017/{train2017,val2017}/<stem>.png    stuffthingmaps_trainval2017.zip
    SRC/annotations/instances_{train2017,val2017}.json                 annotations_trainval2017.zip

A split (train, val) is there when both its image folder and its label folder are. Label maps are the 8-bit
single-channel stuffthingmaps as stored: value v (0..181) is COCO-Stuff class v + 1, 255 unlabeled (see
spadekit.data.labelspaces). Grayscale JPEGs are read as RGB. Instance maps are drawn from the annotation JSON
(id scheme, painting order and memory: see instances.py); with `instances=false` none are built and
annotations/ is not needed.
"""

from __future__ import annotations

from pathlib import Path

from spadekit.plugin import (
    Sample,
    SpadekitError,
    as_label_dtype,
    check_same_size,
    coco_stuff_facts,
    read_index_map,
    read_rgb,
    require_pair,
)
from spadekit_plugins.coco_stuff.instances import InstanceIndex
from spadekit_plugins.coco_stuff.spec import CocoStuffOptions

SPLITS = ("train", "val")
LABELS = "stuffthingmaps_trainval2017"
LAYOUT = "SRC/{train2017,val2017}/<stem>.jpg and SRC/stuffthingmaps_trainval2017/{train2017,val2017}/<stem>.png"
COLOUR_HINT = "use the stuffthingmaps_trainval2017 PNGs, which hold class ids, not a colour visualisation"


class CocoStuffSource:
    def __init__(self, options: CocoStuffOptions, src: Path):
        self.options = options
        self.src = Path(src)
        if not self.src.is_dir():
            raise SpadekitError(
                f"COCO-Stuff folder {self.src} does not exist; give --src the folder laid out as {LAYOUT}."
            )
        self._splits = [s for s in SPLITS if self._images(s).is_dir() and self._labels(s).is_dir()]
        if not self._splits:
            raise SpadekitError(
                f"COCO-Stuff folder {self.src} has neither train2017 nor val2017 together with its stuffthingmaps "
                f"labels; it must be laid out as {LAYOUT} (unpack train2017.zip or val2017.zip and "
                f"stuffthingmaps_trainval2017.zip into {self.src})."
            )
        self.facts = coco_stuff_facts()
        self._instances: dict[str, InstanceIndex] = {}
        if options.instances:
            self._instances = {split: InstanceIndex(self._annotation_file(split)) for split in self._splits}
        else:
            self.facts = self.facts.model_copy(update={"has_instances": False})
        self._keys: dict[str, list[str]] = {}

    def splits(self) -> list[str]:
        return list(self._splits)

    def keys(self, split: str) -> list[str]:
        # Keys from both sides, so that a label without its image is listed as skipped, not silently dropped.
        if split not in self._keys:
            images = {path.stem for path in self._images(split).glob("*.jpg")}
            labels = {path.stem for path in self._labels(split).glob("*.png")}
            self._keys[split] = sorted(images | labels)
        return self._keys[split]

    def load(self, split: str, key: str) -> Sample:
        image_path = self._images(split) / f"{key}.jpg"
        label_path = self._labels(split) / f"{key}.png"
        require_pair(image_path, label_path, "stuffthingmaps label")
        image = read_rgb(image_path)
        label = read_index_map(label_path, "stuffthingmaps label", COLOUR_HINT)
        check_same_size(image, image_path, label, label_path)
        instance = self._instances[split].instance_map(image_path, label) if self.options.instances else None
        # Values 182..254 are left to prepare's check, which stops with a message naming the sample.
        return Sample(key, image, as_label_dtype(label), instance)

    def _images(self, split: str) -> Path:
        return self.src / f"{split}2017"

    def _labels(self, split: str) -> Path:
        return self.src / LABELS / f"{split}2017"

    def _annotation_file(self, split: str) -> Path:
        path = self.src / "annotations" / f"instances_{split}2017.json"
        if not path.is_file():
            raise SpadekitError(
                f"{path} is missing; instance maps are drawn from it: unpack annotations_trainval2017.zip into "
                f"{self.src}, or prepare without instance maps with `--set instances=false`."
            )
        return path
