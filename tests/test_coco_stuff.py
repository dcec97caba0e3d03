"""The coco-stuff dataset plugin on a tiny folder laid out exactly like the COCO-Stuff 2017 download."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image

from spadekit import registry
from spadekit.data.prepare import prepare
from spadekit.data.sample import SkipSample
from spadekit.errors import SpadekitError

W, H = 32, 24
SKY, GRASS, UNLABELED = 156, 123, 255  # stuffthingmaps values of sky-other, grass, unlabeled
PERSON, CAR, DOG = 1, 3, 18  # COCO category ids; their label values are id - 1
CATEGORIES = [{"id": i, "name": n, "supercategory": n} for i, n in ((PERSON, "person"), (CAR, "car"), (DOG, "dog"))]


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[float]:
    """A COCO polygon covering pixels [y0:y1, x0:x1] (pycocotools fills a polygon's integer box that way)."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """Run lengths of a binary mask in column-major order, starting with a run of zeros (COCO's iscrowd RLE)."""
    flat = mask.ravel(order="F").astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"size": [H, W], "counts": ([0] if flat[0] else []) + counts}


def _masks() -> dict[str, np.ndarray]:
    crowd = np.zeros((H, W), np.uint8)
    crowd[14:22, 12:24] = 1
    dog = np.zeros((H, W), np.uint8)  # an L shape
    dog[5:15, 3:8] = 1
    dog[10:15, 3:20] = 1
    return {"crowd": crowd, "dog": dog}


def _annotations() -> dict[str, list[dict]]:
    """The instances JSONs' annotations by split: polygons, a multi-part polygon, both kinds of RLE."""
    masks = _masks()
    compressed = mask_utils.encode(np.asfortranarray(masks["dog"]))
    compressed["counts"] = compressed["counts"].decode("ascii")

    def ann(ann_id, image_id, category, segmentation, crowd=0):
        return {
            "id": ann_id,
            "image_id": image_id,
            "category_id": category,
            "segmentation": segmentation,
            "area": 0.0,
            "bbox": [0, 0, 1, 1],
            "iscrowd": crowd,
        }

    return {
        "train": [
            ann(5, 9, PERSON, [_rect(2, 4, 14, 20)]),  # large; its higher id must not hide the car on it
            ann(3, 9, CAR, [_rect(8, 8, 12, 12)]),
            ann(9, 9, PERSON, _uncompressed_rle(masks["crowd"]), crowd=1),  # overlaps person 5
            ann(7, 25, DOG, compressed),
        ],
        "val": [
            ann(21, 139, CAR, [_rect(20, 10, 30, 20)]),
            ann(20, 139, PERSON, [_rect(2, 2, 6, 6), _rect(10, 2, 14, 6)]),  # two parts, one object
        ],
    }


def _expected_instances(split: str, image_id: int, label: np.ndarray) -> np.ndarray | None:
    """The documented scheme, drawn by slicing: label values, then 256 + k (annotation-id order), larger first."""
    instance = label.astype(np.int32)
    masks = _masks()
    if (split, image_id) == ("train", 9):  # ids 3, 5, 9 -> 256, 257, 258; painted 5 (192 px), 9 (96), 3 (16)
        instance[4:20, 2:14] = 257
        instance[masks["crowd"] > 0] = 258
        instance[8:12, 8:12] = 256
    elif (split, image_id) == ("train", 25):
        instance[masks["dog"] > 0] = 256
    elif (split, image_id) == ("val", 139):  # ids 20, 21 -> 256, 257
        instance[10:20, 20:30] = 257
        instance[2:6, 2:6] = 256
        instance[2:6, 10:14] = 256
    return instance


def _label(seed: int) -> np.ndarray:
    label = np.full((H, W), GRASS, np.uint8)
    label[:3] = UNLABELED
    label[3:12] = SKY
    label[4:20, 2:14] = PERSON - 1
    label[seed % 5 + 14 : 22, 20:28] = CAR - 1
    return label


def _image(seed: int) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 8, y * 10, (x + y + seed * 20) % 256], axis=-1).astype(np.uint8)


# (split, image id, has image, has label); 30 is a grayscale JPEG, 49 a truncated one
FILES = [
    ("train", 9, True, True),
    ("train", 25, True, True),
    ("train", 30, True, True),
    ("train", 34, False, True),
    ("train", 49, True, True),
    ("val", 139, True, True),
    ("val", 285, True, False),
]


def _stem(image_id: int) -> str:
    return f"{image_id:012d}"


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("coco") / "cocostuff"
    images: dict[str, list[dict]] = {"train": [], "val": []}
    for split, image_id, has_image, has_label in FILES:
        name = _stem(image_id)
        images[split].append({"id": image_id, "file_name": f"{name}.jpg", "height": H, "width": W})
        if has_image:
            (root / f"{split}2017").mkdir(parents=True, exist_ok=True)
            pixels = _image(image_id)
            photo = Image.fromarray(pixels[..., 0] if image_id == 30 else pixels)
            photo.save(root / f"{split}2017" / f"{name}.jpg", quality=90)
        if has_label:
            folder = root / "stuffthingmaps_trainval2017" / f"{split}2017"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_label(image_id), mode="L").save(folder / f"{name}.png")
    corrupt = root / "train2017" / f"{_stem(49)}.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:300])  # an interrupted download
    (root / "annotations").mkdir()
    for split, anns in _annotations().items():
        data = {"info": {}, "licenses": [], "images": images[split], "annotations": anns, "categories": CATEGORIES}
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return root


def _source(root: Path, **options):
    return registry.get("datasets", "coco-stuff").build(options, src=root)


def _copy(fixture_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(fixture_root, tmp_path / "cocostuff"))


def _assert_no_shard_written(out: Path) -> None:
    assert not list(out.glob("*.h5")) and not list(out.glob(".*.tmp*"))


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_prepare_and_export_give_back_labels_and_instances(fixture_root, tmp_path, cli):
    out, files = tmp_path / "shards", tmp_path / "files"
    summary = prepare("coco-stuff", out, src=fixture_root, settings={"shard_size": 2})
    facts = summary.facts
    assert summary.complete and facts.label_nc == 182 and facts.dontcare_id == 255 and facts.has_instances
    assert facts.class_names[SKY] == "sky-other" and facts.class_names[CAR - 1] == "car"
    assert summary.splits["train"].samples == 3 and summary.splits["val"].samples == 1
    skipped = dict(summary.splits["train"].skipped) | dict(summary.splits["val"].skipped)
    assert set(skipped) == {_stem(34), _stem(49), _stem(285)}
    assert "without its image" in skipped[_stem(34)]
    assert f"{_stem(49)}.jpg is not a readable image" in skipped[_stem(49)]
    assert "no stuffthingmaps label" in skipped[_stem(285)]

    cli("data", "export", str(out), "--out", str(files))
    exported = 0
    for split, image_id, *_ in FILES:
        key = _stem(image_id)
        if key in skipped:
            continue
        got = files / split
        label = _png(fixture_root / "stuffthingmaps_trainval2017" / f"{split}2017" / f"{key}.png")
        with Image.open(fixture_root / f"{split}2017" / f"{key}.jpg") as photo:
            image = np.asarray(photo.convert("RGB"))  # the grayscale JPEG becomes RGB
        assert np.array_equal(_png(got / "labels" / f"{key}.png"), label)
        assert np.array_equal(_png(got / "images" / f"{key}.png"), image)
        instance = _png(got / "instances" / f"{key}.png").astype(np.int32)
        assert np.array_equal(instance, _expected_instances(split, image_id, label))
        exported += 1
    assert exported == 4


def test_keys_come_from_images_and_labels_in_order(fixture_root):
    source = _source(fixture_root)
    assert source.splits() == ["train", "val"]
    assert source.keys("train") == [_stem(i) for i in (9, 25, 30, 34, 49)]
    assert source.keys("val") == [_stem(139), _stem(285)]
    gray = source.load("train", _stem(30))
    assert gray.image.shape == (H, W, 3) and np.array_equal(gray.instance, _label(30).astype(np.int32))


def test_without_instances_the_json_is_not_needed(fixture_root, tmp_path):
    root = _copy(fixture_root, tmp_path)
    shutil.rmtree(root / "annotations")
    with pytest.raises(SpadekitError, match=r"instances_train2017\.json is missing.*--set instances=false"):
        _source(root)
    summary = prepare("coco-stuff", tmp_path / "out", src=root, splits=["val"], settings={"instances": "false"})
    assert summary.complete and not summary.facts.has_instances
    assert _source(root, instances=False).load("val", _stem(139)).instance is None


def test_missing_folders_name_the_expected_layout(fixture_root, tmp_path):
    with pytest.raises(SpadekitError, match="does not exist"):
        _source(tmp_path / "nowhere")
    root = tmp_path / "images_only"
    shutil.copytree(fixture_root / "val2017", root / "val2017")
    with pytest.raises(SpadekitError, match=r"laid out as .*stuffthingmaps_trainval2017/\{train2017,val2017\}"):
        prepare("coco-stuff", tmp_path / "out", src=root)
    _assert_no_shard_written(tmp_path / "out")


def test_strict_prepare_stops_on_unpaired_files(fixture_root, tmp_path):
    with pytest.raises(SpadekitError, match=f"{_stem(285)}.*no stuffthingmaps label"):
        prepare("coco-stuff", tmp_path / "val", src=fixture_root, splits=["val"], strict=True)
    _assert_no_shard_written(tmp_path / "val")
    with pytest.raises(SpadekitError, match=f"{_stem(34)}.*without its image"):
        prepare("coco-stuff", tmp_path / "train", src=fixture_root, splits=["train"], strict=True)
    _assert_no_shard_written(tmp_path / "train")


def test_unusable_label_files_are_skipped_with_a_reason(fixture_root, tmp_path):
    root = _copy(fixture_root, tmp_path)
    labels = root / "stuffthingmaps_trainval2017"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(labels / "val2017" / f"{_stem(139)}.png")
    Image.fromarray(np.zeros((H // 2, W // 2), np.uint8)).save(labels / "train2017" / f"{_stem(9)}.png")
    source = _source(root)
    with pytest.raises(SkipSample, match="colour image.*single-channel.*stuffthingmaps_trainval2017 PNGs"):
        source.load("val", _stem(139))
    with pytest.raises(SkipSample, match=f"16x12 but its image {_stem(9)}.jpg is 32x24"):
        source.load("train", _stem(9))


def test_an_image_the_json_gives_another_size_is_skipped(fixture_root, tmp_path):
    root = _copy(fixture_root, tmp_path)
    path = root / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["images"][0]["height"] = H + 1
    path.write_text(json.dumps(data))
    with pytest.raises(SkipSample, match=f"instances_val2017.json gives {_stem(139)}.jpg as 32x25"):
        _source(root).load("val", _stem(139))


def test_a_label_id_beyond_the_classes_stops_prepare(fixture_root, tmp_path):
    root = _copy(fixture_root, tmp_path)
    label = _label(139)
    label[0, 0] = 200
    Image.fromarray(label, mode="L").save(root / "stuffthingmaps_trainval2017" / "val2017" / f"{_stem(139)}.png")
    out = tmp_path / "out"
    with pytest.raises(SpadekitError, match=f"{_stem(139)}.*holds id 200"):
        prepare("coco-stuff", out, src=root, splits=["val"])
    _assert_no_shard_written(out)


def test_a_truncated_instances_json_names_the_file(fixture_root, tmp_path, cli):
    root = _copy(fixture_root, tmp_path)
    path = root / "annotations" / "instances_val2017.json"
    path.write_bytes(path.read_bytes()[:100])
    out = tmp_path / "out"
    proc = cli("prepare", "coco-stuff", "--src", str(root), "--out", str(out), "--splits", "val", check=False)
    assert proc.returncode != 0
    message = " ".join((proc.stdout + proc.stderr).split())  # undo the console's line wrapping
    assert "instances_val2017.json is truncated or not valid JSON" in message
    assert "annotations_trainval2017.zip" in message
    _assert_no_shard_written(out)
