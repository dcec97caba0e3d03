"""Where a folder dataset's files are: photo, label and instance folders by split, each file by its stem.

A photo folder is either flat (one split, "train") or holds one sub-folder per split (train/, val/, ...), not
both. Label and instance folders mirror it: labels/train/<stem>.png goes with images/train/<stem>.jpg.
Hidden files and files with other suffixes are ignored. A held-out val split (flickr's `val_count`) takes the
train photos whose stems have the smallest SHA-1 digests: a fixed choice, whatever the file order, that does
not follow the names (photos of one trip, named in sequence, do not all land in val).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from spadekit.plugin import PHOTO_SUFFIXES, SkipSample, SpadekitError

MAP_SUFFIXES = (".png",)


@dataclass
class FileIndex:
    """Files of one kind (photos, labels or instance maps): split -> folder, and split -> stem -> paths."""

    folders: dict[str, Path]
    files: dict[str, dict[str, list[Path]]]

    def stems(self, split: str) -> set[str]:
        return set(self.files.get(split, {}))

    def path(self, split: str, key: str) -> Path | None:
        """The file of `key`, None when there is none; two files with that stem make the sample unusable."""
        paths = self.files.get(split, {}).get(key, [])
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise SkipSample(f"{self.folders[split]} holds {len(paths)} files named {key!r} ({names}); keep one")
        return paths[0] if paths else None


def _is_file_with(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in suffixes


def split_folders(root: Path) -> dict[str, Path]:
    """split -> folder: each sub-folder of `root` is a split; a flat `root` is the one split "train"."""
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        return {"train": root}
    loose = sorted(p.name for p in root.iterdir() if _is_file_with(p, PHOTO_SUFFIXES))
    if loose:
        raise SpadekitError(
            f"{root} holds both photos ({loose[0]}, ...) and sub-folders ({subfolders[0].name}, ...); put every "
            f"photo in a split sub-folder such as {root / 'train'}, or remove the sub-folders."
        )
    return {p.name: p for p in subfolders}


def mirror_folders(root: Path, photo_folders: dict[str, Path], photo_root: Path) -> dict[str, Path]:
    """The folders of `root` (labels/, instances/) that match the photo folders split by split."""
    folders = {split: root / folder.relative_to(photo_root) for split, folder in photo_folders.items()}
    for folder in folders.values():
        if not folder.is_dir():
            raise SpadekitError(
                f"{folder} is missing: {root} must mirror {photo_root}, with one sub-folder for each split there."
            )
    return folders


def index_files(folders: dict[str, Path], suffixes: tuple[str, ...]) -> FileIndex:
    files: dict[str, dict[str, list[Path]]] = {}
    for split, folder in folders.items():
        by_stem: dict[str, list[Path]] = {}
        for path in sorted(folder.iterdir()):
            if _is_file_with(path, suffixes):
                by_stem.setdefault(path.stem, []).append(path)
        files[split] = by_stem
    return FileIndex(folders, files)


def held_out(stems: list[str], count: int) -> set[str]:
    """The `count` stems with the smallest SHA-1 digest of their UTF-8 text."""
    return set(sorted(stems, key=lambda stem: hashlib.sha1(stem.encode()).hexdigest())[:count])


def hold_out(photos: FileIndex, count: int) -> FileIndex:
    """Move `count` photos of the train split into a new val split (see the module docstring)."""
    if "val" in photos.files:
        raise SpadekitError(
            f"{photos.folders['val']} already is a val split; set val_count=0, or move its photos into the train "
            "folder to have val_count of them held out."
        )
    train = photos.files.get("train")
    if train is None:
        raise SpadekitError(
            f"val_count holds photos out of the train split, but the photos are split into "
            f"{', '.join(photos.files)}; set val_count=0 or name one sub-folder train."
        )
    if count >= len(train):
        raise SpadekitError(
            f"val_count={count} would leave no training photos: {photos.folders['train']} has {len(train)}; "
            "choose a smaller val_count."
        )
    val = held_out(list(train), count)
    files = {**photos.files, "train": {k: v for k, v in train.items() if k not in val}}
    files["val"] = {k: v for k, v in train.items() if k in val}
    return FileIndex({**photos.folders, "val": photos.folders["train"]}, files)
