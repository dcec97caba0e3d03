"""The cityscapes dataset plugin on a tiny folder laid out exactly like the Cityscapes download."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadekit import registry
from spadekit.data.prepare import prepare
from spadekit.data.reader import SplitReader
from spadekit.data.sample import SkipSample
from spadekit.errors import SpadekitError

W, H = 64, 32
# labelIds: 0 unlabeled, 7 road, 8 sidewalk, 11 building, 21 vegetation, 23 sky, 24 person, 26 car
POLYGONS = {
    "imgHeight": H,
    "imgWidth": W,
    "objects": [
        {"label": "sky", "polygon": [[0, 0], [63, 0], [63, 9], [0, 9]]},
        {"label": "road", "polygon": [[0, 16], [63, 16], [63, 31], [0, 31]]},
        {"label": "car", "polygon": [[10, 20], [20, 20], [20, 28], [10, 28]]},
        {"label": "car", "polygon": [[40, 20], [50, 20], [50, 28], [40, 28]]},
    ],
}


def _maps(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    label = np.zeros((H, W), np.uint8)  # row 0..3 stay 0 (unlabeled)
    label[4:12] = 23
    label[12:20, : W // 2] = 11
    label[12:20, W // 2 :] = 21
    label[20:] = 7
    label[20:, 60:] = 8
    label[22:30, 5:15] = 26
    label[22:30, 30:40] = 26
    label[14:30, 50:54] = 24
    instance = label.astype(np.int32)
    instance[22:30, 5:15] = 26001
    instance[22:30, 30:40] = 26002
    instance[14:30, 50:54] = 24000
    return image, label, instance


def _write(root: Path, split: str, city: str, stem: str, seed: int, *, image=True, pngs=True, polygons=False):
    img, label, instance = _maps(seed)
    if image:
        folder = root / "leftImg8bit" / split / city
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{stem}_leftImg8bit.png")
    gt = root / "gtFine" / split / city
    gt.mkdir(parents=True, exist_ok=True)
    if pngs:
        Image.fromarray(label).save(gt / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(instance.astype(np.uint16)).save(gt / f"{stem}_gtFine_instanceIds.png")  # 16-bit, as shipped
    if polygons:
        (gt / f"{stem}_gtFine_polygons.json").write_text(json.dumps(POLYGONS))


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes") / "cityscapes"
    _write(root, "train", "aachen", "aachen_000000_000019", 1)
    _write(root, "train", "aachen", "aachen_000001_000019", 2)
    _write(root, "train", "bochum", "bochum_000000_000313", 3)
    _write(root, "train", "bochum", "bochum_000001_000313", 4, pngs=False, polygons=True)  # polygons only
    _write(root, "train", "bochum", "bochum_000002_000313", 5, image=False)  # label without image
    _write(root, "val", "frankfurt", "frankfurt_000000_000294", 6)
    _write(root, "val", "frankfurt", "frankfurt_000001_000294", 7)
    corrupt = root / "leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png"
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated download
    return root


def _source(root: Path, **options):
    return registry.get("datasets", "cityscapes").build(options, src=root)


def test_prepare_and_export_keep_cityscapes_pixels_exactly(fixture_root, tmp_path, cli):
    out, files = tmp_path / "shards", tmp_path / "files"
    summary = prepare("cityscapes", out, src=fixture_root, settings={"shard_size": 2})
    assert summary.complete and summary.facts.label_nc == 35 and summary.facts.dontcare_id is None
    train = summary.splits["train"]
    assert train.samples == 3 and summary.splits["val"].samples == 2
    skipped = dict(train.skipped)
    assert set(skipped) == {"aachen_000001_000019", "bochum_000002_000313"}
    assert "aachen_000001_000019_leftImg8bit.png" in skipped["aachen_000001_000019"]
    assert "without their image" in skipped["bochum_000002_000313"]

    cli("data", "export", str(out), "--out", str(files))
    exported = 0
    for split, folder in (("train", fixture_root / "gtFine/train"), ("val", fixture_root / "gtFine/val")):
        for label_png in folder.glob("*/*_gtFine_labelIds.png"):
            key = label_png.name.split("_gtFine_")[0]
            if key in skipped:
                continue
            source_label = np.asarray(Image.open(label_png))
            source_instance = np.asarray(Image.open(str(label_png).replace("labelIds", "instanceIds")))
            source_image = np.asarray(Image.open(fixture_root / "leftImg8bit" / split / label_png.parent.name
                                                 / f"{key}_leftImg8bit.png"))
            got = files / split
            assert np.array_equal(np.asarray(Image.open(got / "labels" / f"{key}.png")), source_label)
            assert np.array_equal(np.asarray(Image.open(got / "instances" / f"{key}.png")).astype(np.int32),
                                  source_instance.astype(np.int32))
            assert np.array_equal(np.asarray(Image.open(got / "images" / f"{key}.png")), source_image)
            exported += 1
    assert exported == 4

    # the polygons-only sample is rendered as its polygons say
    reader = SplitReader(out, "train")
    rendered = next(reader.read(i) for i in range(len(reader)) if reader.read(i).key == "bochum_000001_000313")
    assert rendered.label[5, 30] == 23 and rendered.label[12, 30] == 0 and rendered.label[18, 30] == 7
    assert rendered.label[24, 15] == 26 and rendered.label[24, 45] == 26
    assert rendered.instance[24, 15] == 26000 and rendered.instance[24, 45] == 26001
    assert rendered.instance[18, 30] == 7


def test_train_ids_map_through_cityscapesscripts(fixture_root):
    source = _source(fixture_root, label_space="trainIds")
    facts = source.facts
    assert facts.label_nc == 19 and facts.dontcare_id == 255
    assert facts.class_names[13] == "car" and facts.palette[13] == (0, 0, 142) and 13 in facts.thing_ids
    sample = source.load("val", "frankfurt_000000_000294")
    _, label, instance = _maps(6)
    assert sample.label.dtype == np.uint8
    assert (sample.label[label == 26] == 13).all()
    assert (sample.label[label == 0] == 255).all()
    assert (sample.label[label == 7] == 0).all() and (sample.label[label == 23] == 10).all()
    assert np.array_equal(sample.instance, instance)  # instance maps stay as stored


def test_missing_gtfine_folder_is_named(fixture_root, tmp_path):
    root = tmp_path / "only_images"
    shutil.copytree(fixture_root / "leftImg8bit", root / "leftImg8bit")
    with pytest.raises(SpadekitError, match="gtFine"):
        prepare("cityscapes", tmp_path / "out", src=root)
    with pytest.raises(SpadekitError, match="does not exist"):
        _source(tmp_path / "nowhere")


def test_bad_label_files_are_skipped_with_a_reason(fixture_root, tmp_path):
    root = tmp_path / "cs"
    shutil.copytree(fixture_root, root)
    gt = root / "gtFine/val/frankfurt"
    colour = np.zeros((H, W, 3), np.uint8)
    Image.fromarray(colour).save(gt / "frankfurt_000000_000294_gtFine_labelIds.png")
    for suffix in ("labelIds.png", "instanceIds.png"):
        (gt / f"frankfurt_000001_000294_gtFine_{suffix}").unlink()
    (gt / "frankfurt_000001_000294_gtFine_polygons.json").write_text(json.dumps(POLYGONS)[:40])
    source = _source(root)
    with pytest.raises(SkipSample, match="colour image.*single-channel"):
        source.load("val", "frankfurt_000000_000294")
    with pytest.raises(SkipSample, match="frankfurt_000001_000294_gtFine_polygons.json"):
        source.load("val", "frankfurt_000001_000294")
    (gt / "frankfurt_000001_000294_gtFine_polygons.json").unlink()
    with pytest.raises(SkipSample, match="no gtFine labels"):
        source.load("val", "frankfurt_000001_000294")
    small = Image.fromarray(np.zeros((H // 2, W // 2), np.uint8))
    small.save(root / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png")
    with pytest.raises(SkipSample, match="32x16 but its image"):
        source.load("train", "aachen_000000_000019")
