"""The flickr dataset plugin, and folder without labels/: photos auto-labelled by a segmenter plugin.

The segmenter is tests/fixture_segmenters.py's `colours` (nearest class colour), registered through
SPADEKIT_PLUGINS as a plugin author would; the photos are stripes of its class colours with a little noise,
so the label map it predicts is known exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadekit import registry
from spadekit.data.export import export
from spadekit.data.manifest import Manifest
from spadekit.data.prepare import prepare
from spadekit.errors import SpadekitError
from tests.fixture_segmenters import LOG_VAR

CLASS_COLOURS = {"sky": [70, 130, 180], "grass": [40, 160, 40], "water": [20, 40, 200]}
CKPT_HINT = "pass --set segmenter_ckpt=PATH \\(or --segmenter-ckpt PATH\\), or train one with `spadekit segmenter train"


@pytest.fixture
def ckpt(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SPADEKIT_PLUGINS", "colours=tests.fixture_segmenters:colours")
    path = tmp_path / "colours.json"
    path.write_text(json.dumps(CLASS_COLOURS))
    return path


def _photos(folder: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """Striped photos of two sizes; returns each one's true class ids."""
    folder.mkdir(parents=True, exist_ok=True)
    colours = np.array(list(CLASS_COLOURS.values()))
    truth = {}
    for i, key in enumerate(keys):
        h, w = 6, 8 + 2 * (i % 2)
        ids = (np.arange(h)[:, None] + np.arange(w)[None, :] // 3 + i) % len(colours)
        noise = np.random.default_rng(i).integers(-8, 9, (h, w, 3))
        Image.fromarray(np.clip(colours[ids] + noise, 0, 255).astype(np.uint8)).save(folder / f"{key}.png")
        truth[key] = ids
    return truth


def _settings(ckpt: Path, **more) -> dict:
    return {"segmenter": "colours", "segmenter_ckpt": str(ckpt), **more}


def _exported_labels(out: Path, files: Path) -> dict[str, dict[str, np.ndarray]]:
    export(out, files)
    return {
        split.name: {p.stem: np.asarray(Image.open(p)) for p in (split / "labels").glob("*.png")}
        for split in files.iterdir()
    }


def test_flickr_labels_are_the_segmenter_predictions_with_its_classes(tmp_path, ckpt):
    src, out = tmp_path / "landscapes", tmp_path / "shards"
    truth = _photos(src, [f"photo_{i}" for i in range(6)])
    summary = prepare("flickr", out, src=src, settings=_settings(ckpt, val_count=2))

    held_out = sorted(truth, key=lambda key: hashlib.sha1(key.encode()).hexdigest())[:2]
    labels = _exported_labels(out, tmp_path / "files")
    assert sorted(labels["val"]) == sorted(held_out) and len(labels["train"]) == 4
    for split_labels in labels.values():
        for key, label in split_labels.items():
            assert np.array_equal(label, truth[key]), key
    facts = Manifest.load(out).dataset
    assert facts.name == "landscapes" and facts.class_names == list(CLASS_COLOURS)
    assert facts.palette == [tuple(c) for c in CLASS_COLOURS.values()]
    assert facts.dontcare_id is None and not facts.has_instances
    assert any("2 photos held out" in line for line in summary.notes)
    assert any("segmenter 'colours'" in line for line in summary.notes)


def test_two_workers_give_the_same_flickr_shards_as_one(tmp_path, ckpt, monkeypatch):
    src = tmp_path / "photos"
    _photos(src, [f"p{i}" for i in range(6)])
    settings = _settings(ckpt, val_count=1, shard_size=2)
    prepare("flickr", tmp_path / "w1", src=src, settings=settings)
    log = tmp_path / "builds.log"
    monkeypatch.setenv(LOG_VAR, str(log))
    prepare("flickr", tmp_path / "w2", src=src, settings=settings, workers=2)

    def checksums(root):
        return {s.file: s.sha256 for info in Manifest.load(root).splits.values() for s in info.shards}

    assert checksums(tmp_path / "w2") == checksums(tmp_path / "w1")
    # Built once in this process (for the facts) and once in each worker that started before the work ran out.
    builders = log.read_text().split()
    assert str(os.getpid()) in builders and 2 <= len(builders) == len(set(builders)) <= 3


def test_flickr_without_segmenter_ckpt_says_how_to_get_one(tmp_path, ckpt, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    src, out = tmp_path / "photos", tmp_path / "shards"
    _photos(src, ["a"])
    with pytest.raises(SpadekitError, match="auto-labels its photos, with segmenter 'deeplabv2'.*"
                       "deeplabv2_resnet101_msc-cocostuff164k-100000.pth.* not in the torch hub cache"):
        prepare("flickr", out, src=src)  # the paper's auto-labeller by default
    with pytest.raises(SpadekitError, match=f"auto-labels its photos, with segmenter 'smp'.*{CKPT_HINT}"):
        prepare("flickr", out, src=src, settings={"segmenter": "smp"})
    with pytest.raises(SpadekitError, match="checkpoint .*nothing.json does not exist"):
        prepare("flickr", out, src=src, settings=_settings(tmp_path / "nothing.json"))
    assert not out.exists()


def test_folder_without_labels_is_auto_labelled_by_the_segmenter(tmp_path, ckpt):
    root, out = tmp_path / "mine", tmp_path / "shards"
    truth = _photos(root / "images/train", ["a", "b"]) | _photos(root / "images/val", ["c"])
    for split, key in (("train", "a"), ("train", "b"), ("val", "c")):
        instance = np.full(truth[key].shape, 7, np.uint16)
        (root / "instances" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(instance).save(root / "instances" / split / f"{key}.png")
    summary = prepare("folder", out, src=root, settings=_settings(ckpt))
    assert summary.facts.class_names == list(CLASS_COLOURS) and summary.facts.has_instances
    labels = _exported_labels(out, tmp_path / "files")
    assert {split: sorted(keys) for split, keys in labels.items()} == {"train": ["a", "b"], "val": ["c"]}
    assert all(np.array_equal(label, truth[key]) for split in labels.values() for key, label in split.items())

    folder = registry.get("datasets", "folder")
    with pytest.raises(SpadekitError, match="no labels/ folder, so its photos are auto-labelled .*drop --set classes"):
        folder.build(_settings(ckpt, classes="classes.txt"), src=root)
    with pytest.raises(SpadekitError, match=f"has no labels/ folder, so its photos are auto-labelled, .*{CKPT_HINT}"):
        folder.build({}, src=root)


def test_val_count_holds_photos_out_of_train_only(tmp_path, ckpt):
    flickr = registry.get("datasets", "flickr")
    flat = tmp_path / "flat"
    _photos(flat, ["a", "b", "c"])
    with pytest.raises(SpadekitError, match="val_count=3 would leave no training photos: .*flat has 3"):
        flickr.build(_settings(ckpt, val_count=3), src=flat)
    split = tmp_path / "split"
    _photos(split / "train", ["a", "b"])
    _photos(split / "val", ["c"])
    source = flickr.build(_settings(ckpt), src=split)
    assert source.splits() == ["train", "val"] and source.keys("val") == ["c"]
    with pytest.raises(SpadekitError, match="split/val already is a val split; set val_count=0"):
        flickr.build(_settings(ckpt, val_count=1), src=split)
