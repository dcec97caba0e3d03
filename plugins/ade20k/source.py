"""ADE20K (ADEChallengeData2016) as a DatasetSource: keys are the file stems `ADE_{train,val}_XXXXXXXX`.

Layout (as unzipped): SRC/images/{training,validation}/<stem>.jpg and
SRC/annotations/{training,validation}/<stem>.png (8-bit single-channel: 0 "other", 1..150 the classes of
SRC/objectInfo150.txt), with SRC/sceneCategories.txt giving each stem's scene (`<stem> <scene>` per line).
SRC may also be the folder that holds ADEChallengeData2016/. The folders training and validation are the
splits train and val. Annotation values are stored as they are: 151 ids, exactly the official SPADE's
channels (see spadekit.data.labelspaces).
"""

from __future__ import annotations

import re
from pathlib import Path

from spadekit.plugin import (
    DatasetFacts,
    Sample,
    SpadekitError,
    ade20k_facts,
    as_label_dtype,
    check_same_size,
    read_index_map,
    read_rgb,
    require_pair,
)
from spadekit_plugins.ade20k.outdoor import is_outdoor

DATASET_FOLDER = "ADEChallengeData2016"
SPLIT_FOLDERS = {"train": "training", "val": "validation"}
OBJECT_INFO = "objectInfo150.txt"
SCENES = "sceneCategories.txt"
NUM_CLASSES = 150
COLOUR_HINT = "use the annotations/ PNGs of ADEChallengeData2016 (values 0..150), not a colour rendering"
LAYOUT = (
    "ADEChallengeData2016/images/{training,validation}/ADE_*.jpg and "
    "ADEChallengeData2016/annotations/{training,validation}/ADE_*.png"
)


def find_root(src: Path) -> Path:
    """The ADEChallengeData2016 folder: `src` itself, or the folder of that name inside it."""
    inner = src / DATASET_FOLDER
    if not (src / "images").is_dir() and inner.is_dir():
        return inner
    return src


def read_class_names(path: Path) -> list[str]:
    """The 150 class names of objectInfo150.txt (tab-separated `Idx Ratio Train Val Name`), first synonyms.

    Synonyms may be separated by ", " or by ";" (`windowpane, window`, `windowpane;window`); either gives
    `windowpane`.
    """
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.strip().split("\t")
        if not fields[0].strip().isdigit():  # the header, or a blank line
            continue
        if len(fields) < 5 or not fields[-1].strip():
            raise SpadekitError(
                f"{path} has a row without a name ({line.strip()!r}); replace it with the objectInfo150.txt "
                "of ADEChallengeData2016, whose rows are `Idx<TAB>Ratio<TAB>Train<TAB>Val<TAB>Name`."
            )
        names.append(re.split("[;,]", fields[-1])[0].strip())
    if len(names) != NUM_CLASSES:
        raise SpadekitError(
            f"{path} lists {len(names)} classes, not {NUM_CLASSES}; replace it with the objectInfo150.txt "
            "of ADEChallengeData2016 (or remove it to use the built-in names)."
        )
    return names


def read_scenes(path: Path) -> dict[str, str]:
    """sceneCategories.txt as stem -> scene category."""
    if not path.is_file():
        raise SpadekitError(
            f"{path} is missing: ade20k-outdoor picks outdoor images by it; restore it from "
            "ADEChallengeData2016.zip (or use the ade20k dataset for all images)."
        )
    scenes = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise SpadekitError(
                f"{path} line {number} is {line.strip()!r}, not `<image stem> <scene>`; restore the file "
                "from ADEChallengeData2016.zip."
            )
        scenes[fields[0]] = fields[1]
    return scenes


def dataset_facts(root: Path, name: str) -> DatasetFacts:
    """ade20k_facts, named `name`, with the class names of objectInfo150.txt when `root` has it."""
    facts = ade20k_facts()
    info = root / OBJECT_INFO
    names = ["other", *read_class_names(info)] if info.is_file() else facts.class_names
    return facts.model_copy(update={"name": name, "class_names": names})


class Ade20kSource:
    name = "ade20k"

    def __init__(self, src: Path):
        self.root = find_root(Path(src))
        if not self.root.is_dir():
            raise SpadekitError(f"ADE20K folder {src} does not exist; give --src the folder laid out as {LAYOUT}.")
        for folder in ("images", "annotations"):
            if not (self.root / folder).is_dir():
                raise SpadekitError(
                    f"ADE20K folder {self.root / folder} is missing; --src must be laid out as {LAYOUT} "
                    f"(unzip ADEChallengeData2016.zip and give --src its ADEChallengeData2016 folder)."
                )
        self._splits = [s for s, folder in SPLIT_FOLDERS.items() if self._has_split(folder)]
        if not self._splits:
            raise SpadekitError(
                f"ADE20K folder {self.root} has neither training nor validation in both images/ and "
                f"annotations/; it must be laid out as {LAYOUT}."
            )
        self.facts = dataset_facts(self.root, self.name)
        self._stems: dict[str, list[str]] = {}

    def _has_split(self, folder: str) -> bool:
        return (self.root / "images" / folder).is_dir() and (self.root / "annotations" / folder).is_dir()

    def _paths(self, split: str, key: str) -> tuple[Path, Path]:
        folder = SPLIT_FOLDERS[split]
        return self.root / "images" / folder / f"{key}.jpg", self.root / "annotations" / folder / f"{key}.png"

    def splits(self) -> list[str]:
        return list(self._splits)

    def all_keys(self, split: str) -> list[str]:
        """Stems of images and annotations alike, so that one without the other is listed as skipped."""
        if split not in self._stems:
            folder = SPLIT_FOLDERS[split]
            images = {p.stem for p in (self.root / "images" / folder).glob("*.jpg")}
            annotations = {p.stem for p in (self.root / "annotations" / folder).glob("*.png")}
            self._stems[split] = sorted(images | annotations)
        return self._stems[split]

    def keys(self, split: str) -> list[str]:
        return self.all_keys(split)

    def load(self, split: str, key: str) -> Sample:
        image_path, label_path = self._paths(split, key)
        require_pair(image_path, label_path, "annotation")
        image = read_rgb(image_path)
        label = read_index_map(label_path, "annotation", COLOUR_HINT)
        check_same_size(image, image_path, label, label_path)
        # Ids above 150 are left to prepare's check, which stops with a message naming the sample.
        return Sample(key, image, as_label_dtype(label))


class Ade20kOutdoorSource(Ade20kSource):
    """The images whose sceneCategories.txt category is an outdoor scene (see outdoor.py)."""

    name = "ade20k-outdoor"

    def __init__(self, src: Path):
        super().__init__(src)
        self.scenes = read_scenes(self.root / SCENES)
        self._kept: dict[str, tuple[int, int]] = {}  # split -> (kept, all), for splits whose keys were listed

    def keys(self, split: str) -> list[str]:
        stems = self.all_keys(split)
        kept = [k for k in stems if is_outdoor(self.scenes.get(k, ""))]
        self._kept[split] = (len(kept), len(stems))
        return kept

    def summary_lines(self) -> list[str]:
        counts = [f"{kept} of {total} {split}" for split, (kept, total) in self._kept.items()]
        return [f"outdoor scenes (by {SCENES}): kept {', '.join(counts)} images"] if counts else []
