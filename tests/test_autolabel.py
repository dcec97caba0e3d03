"""Auto-labelling end to end: a segmenter trained by `spadekit segmenter train` on toyscapes labels a folder
of toyscapes photos it never saw through `spadekit prepare flickr`, and its labels agree with the truth.

Threshold: at least AGREEMENT of the pixels get the true class (pixel accuracy against the labels the photos
were generated with). Toyscapes photos were generated from their labels, so a good segmenter recovers most
of them; class borders and small, textured classes (rocks, snow) are where it errs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spadekit.data.manifest import Manifest
from spadekit.data.prepare import prepare
from spadekit.data.reader import SplitReader
from spadekit.imageio import save_png
from tests.conftest import run_cli

AGREEMENT = 0.80
SEGMENTER_SETTINGS = {"num_train": 160, "num_val": 16, "size": 64, "seed": 1}
PHOTO_SETTINGS = {"num_train": 12, "num_val": 1, "size": 64, "seed": 7}  # photos the segmenter never saw


def _photo_folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """toyscapes photos written as JPEG-free PNG files in a flat folder, and their true label maps by stem."""
    shards = tmp_path / "photo_shards"
    prepare("toyscapes", shards, settings=PHOTO_SETTINGS, splits=["train"])
    reader = SplitReader(shards, "train")
    folder, truth = tmp_path / "photos", {}
    for i in range(len(reader)):
        sample = reader.read(i)
        save_png(folder / f"{sample.key}.png", sample.image)
        truth[sample.key] = sample.label
    return folder, truth


def test_segmenter_trained_on_toyscapes_labels_new_photos_through_prepare_flickr(tmp_path):
    train_shards = tmp_path / "toy"
    prepare("toyscapes", train_shards, settings=SEGMENTER_SETTINGS, workers=2)
    run_cli(
        "segmenter", "train", str(train_shards), "--out", str(tmp_path / "seg"),
        "--arch", "unet", "--encoder", "resnet18", "--size", "64", "--epochs", "6", "--batch-size", "8",
        "--lr", "0.003", "--device", "cpu",
    )  # fmt: skip
    epochs = [json.loads(line) for line in (tmp_path / "seg" / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 6

    folder, truth = _photo_folder(tmp_path)
    out = tmp_path / "flickr"
    run_cli(
        "prepare", "flickr", "--src", str(folder), "--out", str(out),
        "--set", f"segmenter_ckpt={tmp_path / 'seg' / 'segmenter.pt'}", "--set", "segmenter=smp",
    )  # fmt: skip

    manifest = Manifest.load(out)
    assert manifest.dataset.class_names == Manifest.load(train_shards).dataset.class_names
    reader = SplitReader(out, "train")
    predicted = {reader.read(i).key: reader.read(i).label for i in range(len(reader))}
    assert predicted.keys() == truth.keys()
    agree = sum(int((predicted[k] == truth[k]).sum()) for k in truth)
    total = sum(truth[k].size for k in truth)
    print(f"auto-label agreement: {agree / total:.3f}")
    assert agree / total >= AGREEMENT, f"auto-labels agree with the truth on {agree / total:.1%} of pixels"
