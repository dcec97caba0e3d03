"""Your own photos as a DatasetSource (plugins `folder` and `flickr`): keys are file stems, read on demand.

folder, --src SRC:
    SRC/images/<stem>.{jpg,jpeg,png,bmp,webp,tif}   photos; or images/<split>/<stem>.*, one sub-folder per split
    SRC/labels/<stem>.png       optional: label map, index (8/16-bit grey or palette PNG) or colour-coded RGB
                                (with --set palette=PATH); mirrors images/ (labels/<split>/<stem>.png)
    SRC/instances/<stem>.png    optional: instance map (8/16-bit); when the folder exists every image needs one
    SRC/classes.txt             optional: class names, line i = class id i (see classes.py for the label space)
Without labels/, the photos are auto-labelled by a segmenter plugin and the class names and palette are the
segmenter's. flat images/ is the one split "train".

flickr, --src SRC: SRC/<stem>.jpg (or SRC/<split>/<stem>.jpg), always auto-labelled, no instance maps;
`val_count` photos of train are held out as the split "val" (see layout.py for which).

Keys are the stems of photos, labels and instance maps together, sorted, so that a label without its photo is
listed as skipped rather than silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from spadekit.plugin import (
    COLOUR_MODES,
    PHOTO_SUFFIXES,
    DatasetFacts,
    Sample,
    SkipSample,
    SpadekitError,
    as_label_dtype,
    check_same_size,
    read_index_map,
    read_rgb,
)
from spadekit_plugins.folder.autolabel import AutoLabeller
from spadekit_plugins.folder.classes import FolderClasses, label_space
from spadekit_plugins.folder.layout import (
    MAP_SUFFIXES,
    FileIndex,
    hold_out,
    index_files,
    mirror_folders,
    split_folders,
)
from spadekit_plugins.folder.palette_file import FORMAT as PALETTE_FORMAT
from spadekit_plugins.folder.spec import FlickrOptions, FolderOptions

FOLDER_LAYOUT = (
    "SRC/images/<stem>.jpg (or images/<split>/<stem>.jpg), with optional SRC/labels/<stem>.png, "
    "SRC/instances/<stem>.png and SRC/classes.txt"
)
FLICKR_LAYOUT = "SRC/<stem>.jpg, or SRC/<split>/<stem>.jpg"
MAX_LABEL_ID = 65535  # shards store labels as uint8 or uint16
PALETTE_HINT = f"for colour-coded labels give their colours with --set palette=PATH ({PALETTE_FORMAT})"


def folder_source(options: FolderOptions, src: Path) -> FolderSource:
    _check_folder(src, FOLDER_LAYOUT)
    images_root = src / "images"
    if not images_root.is_dir():
        raise SpadekitError(
            f"{images_root} is missing; --src must be laid out as {FOLDER_LAYOUT} "
            "(for a folder of photos alone, use `spadekit prepare flickr`)."
        )
    folders = split_folders(images_root)
    images = index_files(folders, PHOTO_SUFFIXES)
    instances = _mirror(src / "instances", folders, images_root)
    labels = _mirror(src / "labels", folders, images_root)
    name = options.name or src.resolve().name
    if labels is not None:
        space = label_space(options, src)
        facts = DatasetFacts(
            name=name,
            class_names=space.class_names,
            palette=space.palette,
            dontcare_id=space.dontcare_id,
            has_instances=instances is not None,
        )
        return FolderSource(facts, images, instances, labels=labels, space=space)
    _refuse_label_space_options(options, src)
    labeller = AutoLabeller(options, f"{src} has no labels/ folder, so its photos are auto-labelled")
    return FolderSource(_auto_facts(name, labeller, instances is not None), images, instances, labeller=labeller)


def flickr_source(options: FlickrOptions, src: Path) -> FolderSource:
    _check_folder(src, FLICKR_LAYOUT)
    images = index_files(split_folders(src), PHOTO_SUFFIXES)
    notes = []
    if options.val_count:
        images = hold_out(images, options.val_count)
        notes.append(f"val: {options.val_count} photos held out of train (those whose stems have the smallest SHA-1)")
    labeller = AutoLabeller(options, "Dataset 'flickr' auto-labels its photos")
    facts = _auto_facts(options.name or src.resolve().name, labeller, has_instances=False)
    return FolderSource(facts, images, None, labeller=labeller, notes=notes)


def _check_folder(src: Path, layout: str) -> None:
    if not src.is_dir():
        raise SpadekitError(f"Folder {src} does not exist; give --src the folder laid out as {layout}.")


def _mirror(root: Path, folders: dict[str, Path], images_root: Path) -> FileIndex | None:
    return index_files(mirror_folders(root, folders, images_root), MAP_SUFFIXES) if root.is_dir() else None


def _refuse_label_space_options(options: FolderOptions, src: Path) -> None:
    given = [key for key in ("classes", "palette", "dontcare", "num_classes") if getattr(options, key) is not None]
    if given:
        raise SpadekitError(
            f"{src} has no labels/ folder, so its photos are auto-labelled and the classes are the segmenter's; "
            f"drop --set {given[0]}, or add {src / 'labels'} with the label maps."
        )


def _auto_facts(name: str, labeller: AutoLabeller, has_instances: bool) -> DatasetFacts:
    # A segmenter never predicts the don't-care id, so the label space has none.
    predicted = labeller.facts
    return DatasetFacts(
        name=name,
        class_names=list(predicted.class_names),
        palette=list(predicted.palette),
        dontcare_id=None,
        has_instances=has_instances,
        thing_ids=list(predicted.thing_ids),
    )


class FolderSource:
    """Photos with label maps from files (`labels` and `space`) or from a segmenter (`labeller`)."""

    def __init__(
        self,
        facts: DatasetFacts,
        images: FileIndex,
        instances: FileIndex | None,
        labels: FileIndex | None = None,
        space: FolderClasses | None = None,
        labeller: AutoLabeller | None = None,
        notes: list[str] | None = None,
    ):
        self.facts = facts
        self.images, self.instances, self.labels = images, instances, labels
        self.space, self.labeller = space, labeller
        self.notes = list(notes or []) + ([labeller.summary_line()] if labeller else [])

    def splits(self) -> list[str]:
        return list(self.images.files)

    def keys(self, split: str) -> list[str]:
        stems = self.images.stems(split)
        for index in (self.labels, self.instances):
            stems |= index.stems(split) if index else set()
        return sorted(stems)

    def summary_lines(self) -> list[str]:
        return list(self.notes)

    def load(self, split: str, key: str) -> Sample:
        image_path, label_path, instance_path = self._paths(split, key)
        image = read_rgb(image_path)
        if label_path is None:
            label = self.labeller.label(image)
        else:
            label = read_label(label_path, self.space)
            check_same_size(image, image_path, label, label_path)
        instance = None
        if instance_path is not None:
            instance = read_index_map(instance_path, "instance map").astype(np.int32)
            check_same_size(image, image_path, instance, instance_path)
        return Sample(key, image, label, instance)

    def _paths(self, split: str, key: str) -> tuple[Path, Path | None, Path | None]:
        """The sample's files; a photo without its label or instance map, or the reverse, is skipped."""
        image_path = self.images.path(split, key)
        label_path = self.labels.path(split, key) if self.labels else None
        instance_path = self.instances.path(split, key) if self.instances else None
        if image_path is None:
            raise SkipSample(f"{label_path or instance_path} has no photo: {self.images.folders[split]} has no {key}.*")
        if self.labels and label_path is None:
            raise SkipSample(f"{image_path} has no label map: {self.labels.folders[split] / key}.png is missing")
        if self.instances and instance_path is None:
            raise SkipSample(
                f"{image_path} has no instance map: {self.instances.folders[split] / key}.png is missing "
                "(with an instances/ folder every photo needs one)"
            )
        return image_path, label_path, instance_path


def read_label(path: Path, space: FolderClasses) -> np.ndarray:
    """A label PNG as class ids: an index map as stored, a colour-coded one through the palette file."""
    if space.colour_palette is not None and _is_colour(path):
        return as_label_dtype(space.colour_palette.decode(read_rgb(path), path, space.dontcare_id))
    label = read_index_map(path, "label", PALETTE_HINT)
    if int(label.max(initial=0)) > MAX_LABEL_ID:  # would wrap in uint16 and slip past prepare's id check
        raise SpadekitError(f"Label map {path} holds id {int(label.max())}, beyond 65535; fix that label file.")
    return as_label_dtype(label)


def _is_colour(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            return im.mode in COLOUR_MODES
    except (OSError, SyntaxError, ValueError):
        return False  # read_index_map says what is wrong with the file
