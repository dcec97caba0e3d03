"""The ade20k and ade20k-outdoor dataset plugins on a tiny folder laid out exactly like ADEChallengeData2016."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadekit import registry
from spadekit.data.labelspaces import ADE20K_CLASSES, ade20k_facts
from spadekit.data.prepare import prepare
from spadekit.data.reader import SplitReader
from spadekit.data.sample import SkipSample
from spadekit.errors import SpadekitError

W, H = 24, 16
# stem -> (scene, what the fixture holds); all but "image only", "annotation only" and "corrupt" are usable
FILES = {
    "ADE_train_00000001": ("airport_terminal", "both"),
    "ADE_train_00000002": ("street", "both"),
    "ADE_train_00000003": ("bedroom", "both"),
    "ADE_train_00000004": ("mountain_snowy", "both"),
    "ADE_train_00000005": ("field_cultivated", "image only"),
    "ADE_train_00000006": ("beach", "annotation only"),
    "ADE_train_00000007": ("highway", "corrupt"),
    "ADE_val_00000001": ("coast", "both"),
    "ADE_val_00000002": ("kitchen", "both"),
}
SKIPPED = {"ADE_train_00000005", "ADE_train_00000006", "ADE_train_00000007"}
OUTDOOR = {"ADE_train_00000002", "ADE_train_00000004", "ADE_val_00000001"}
# synonyms as in ADEChallengeData2016's objectInfo150.txt (", ") and in CSAIL's objectInfo150.csv (";")
SYNONYMS = {"windowpane": "windowpane, window", "person": "person;individual;someone;somebody;mortal;soul"}


def _split(stem: str) -> str:
    return "training" if "_train_" in stem else "validation"


def _arrays(seed: int, size=(W, H)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    label = rng.integers(0, 151, (size[1], size[0]), dtype=np.uint8)
    label[0, 0], label[-1, -1] = 0, 150
    return image, label


def _write_object_info(path: Path, names: list[str]) -> None:
    rows = ["Idx\tRatio\tTrain\tVal\tName"]
    rows += [f"{i}\t0.{1000 - i:04d}\t{20000 - i}\t{2000 - i}\t{name}" for i, name in enumerate(names, 1)]
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ade") / "ADEChallengeData2016"
    for seed, (stem, (_, holds)) in enumerate(FILES.items()):
        image, label = _arrays(seed, (H, W) if seed == 3 else (W, H))  # ADE20K sizes vary
        images, annotations = root / "images" / _split(stem), root / "annotations" / _split(stem)
        images.mkdir(parents=True, exist_ok=True)
        annotations.mkdir(parents=True, exist_ok=True)
        if holds != "annotation only":
            Image.fromarray(image).save(images / f"{stem}.jpg", quality=90)
        if holds != "image only":
            Image.fromarray(label, mode="L").save(annotations / f"{stem}.png")
    corrupt = root / "images/training/ADE_train_00000007.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:300])  # truncated download
    _write_object_info(root / "objectInfo150.txt", [SYNONYMS.get(n, n) for n in ADE20K_CLASSES[1:]])
    (root / "sceneCategories.txt").write_text("".join(f"{stem} {scene}\n" for stem, (scene, _) in FILES.items()))
    return root


def _source(name: str, root: Path):
    return registry.get("datasets", name).build({}, src=root)


def _copy(root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ADEChallengeData2016"
    shutil.copytree(root, copy)
    return copy


def _no_partial_shards(out: Path) -> bool:
    return not list(out.glob("*.h5")) and not list(out.glob(".*.tmp*"))


def test_prepare_and_export_keep_ade20k_pixels_exactly(fixture_root, tmp_path, cli):
    out, files = tmp_path / "shards", tmp_path / "files"
    summary = prepare("ade20k", out, src=fixture_root, settings={"shard_size": 2})
    facts = summary.facts
    assert summary.complete and facts.name == "ade20k" and facts.label_nc == 151 and facts.dontcare_id is None
    assert not facts.has_instances and facts.palette == ade20k_facts().palette
    assert facts.class_names[9] == "windowpane" and facts.class_names[13] == "person"
    assert summary.splits["train"].samples == 4 and summary.splits["val"].samples == 2
    skipped = dict(summary.splits["train"].skipped)
    assert set(skipped) == SKIPPED
    assert "ADE_train_00000005.png is missing" in skipped["ADE_train_00000005"]
    assert "annotation without its image" in skipped["ADE_train_00000006"]
    assert "ADE_train_00000007.jpg is not a readable image" in skipped["ADE_train_00000007"]

    cli("data", "export", str(out), "--out", str(files))
    exported = 0
    for stem in sorted(set(FILES) - SKIPPED):
        split = "train" if "_train_" in stem else "val"
        got = files / split
        source_label = np.asarray(Image.open(fixture_root / "annotations" / _split(stem) / f"{stem}.png"))
        source_image = np.asarray(Image.open(fixture_root / "images" / _split(stem) / f"{stem}.jpg").convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(got / "labels" / f"{stem}.png")), source_label)
        assert np.array_equal(np.asarray(Image.open(got / "images" / f"{stem}.png")), source_image)
        assert not (got / "instances").exists()
        exported += 1
    assert exported == 6


def test_outdoor_keeps_outdoor_scenes_and_reports_counts(fixture_root, tmp_path):
    out = tmp_path / "shards"
    summary = prepare("ade20k-outdoor", out, src=fixture_root.parent)  # the folder holding ADEChallengeData2016
    assert summary.facts.name == "ade20k-outdoor" and summary.facts.label_nc == 151
    kept = {
        reader.read(i).key
        for reader in (SplitReader(out, "train"), SplitReader(out, "val"))
        for i in range(len(reader))
    }
    assert kept == OUTDOOR
    # the outdoor images without a usable pair are still listed, the indoor ones are not considered at all
    assert {key for key, _ in summary.splits["train"].skipped} == SKIPPED
    assert summary.notes == ["outdoor scenes (by sceneCategories.txt): kept 5 of 7 train, 1 of 2 val images"]


def test_outdoor_needs_scene_categories(fixture_root, tmp_path):
    root = _copy(fixture_root, tmp_path)
    (root / "sceneCategories.txt").unlink()
    with pytest.raises(SpadekitError, match=r"sceneCategories\.txt is missing"):
        _source("ade20k-outdoor", root)
    assert _source("ade20k", root).splits() == ["train", "val"]  # the full dataset does not need it


def test_class_names_come_from_object_info(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for folder in ("images/validation", "annotations/validation"):
        (root / folder).mkdir(parents=True)
    assert _source("ade20k", root).facts.class_names == list(ADE20K_CLASSES)  # built in, without the file

    _write_object_info(root / "objectInfo150.txt", [f"class {i};alias {i}" for i in range(1, 151)])
    facts = _source("ade20k", root).facts
    assert facts.class_names == ["other"] + [f"class {i}" for i in range(1, 151)]
    assert facts.palette == ade20k_facts().palette
    assert _source("ade20k", root).splits() == ["val"]

    _write_object_info(root / "objectInfo150.txt", [f"class {i}" for i in range(1, 150)])
    with pytest.raises(SpadekitError, match=r"objectInfo150\.txt lists 149 classes, not 150"):
        _source("ade20k", root)


def test_missing_folders_name_the_layout(fixture_root, tmp_path):
    only_images = tmp_path / "only_images"
    shutil.copytree(fixture_root / "images", only_images / "images")
    with pytest.raises(SpadekitError, match=r"annotations is missing.*annotations/\{training,validation\}"):
        prepare("ade20k", tmp_path / "out", src=only_images)
    only_annotations = tmp_path / "only_annotations"
    shutil.copytree(fixture_root / "annotations", only_annotations / "annotations")
    with pytest.raises(SpadekitError, match=r"images is missing.*images/\{training,validation\}"):
        _source("ade20k", only_annotations)
    mismatched = tmp_path / "mismatched"
    shutil.copytree(fixture_root / "images/training", mismatched / "images/training")
    shutil.copytree(fixture_root / "annotations/validation", mismatched / "annotations/validation")
    with pytest.raises(SpadekitError, match="neither training nor validation"):
        _source("ade20k", mismatched)
    with pytest.raises(SpadekitError, match="does not exist"):
        _source("ade20k", tmp_path / "nowhere")
    assert not (tmp_path / "out").exists()


def test_strict_stops_on_an_unpaired_file_without_a_partial_shard(fixture_root, tmp_path):
    out = tmp_path / "shards"
    with pytest.raises(SpadekitError, match=r"'ADE_train_00000005' \(train\) cannot be used.*\.png is missing"):
        prepare("ade20k", out, src=fixture_root, strict=True)
    assert _no_partial_shards(out) and not (out / "manifest.json").exists()


def test_label_id_above_150_stops_prepare_naming_the_sample(fixture_root, tmp_path):
    root = _copy(fixture_root, tmp_path)
    _, label = _arrays(7)
    label[3, 4] = 151
    Image.fromarray(label, mode="L").save(root / "annotations/validation/ADE_val_00000001.png")
    out = tmp_path / "shards"
    with pytest.raises(SpadekitError, match=r"'ADE_val_00000001' \(val\) holds id 151.*0\.\.150"):
        prepare("ade20k", out, src=root, splits=["val"])
    assert _no_partial_shards(out) and not (out / "manifest.json").exists()


def test_bad_files_are_skipped_with_a_reason(fixture_root, tmp_path):
    root = _copy(fixture_root, tmp_path)
    annotations = root / "annotations/validation"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(annotations / "ADE_val_00000001.png")  # RGB
    Image.fromarray(np.zeros((H // 2, W), np.uint8), mode="L").save(annotations / "ADE_val_00000002.png")
    source = _source("ade20k", root)
    with pytest.raises(SkipSample, match=r"ADE_val_00000001\.png is a colour image.*single-channel id maps"):
        source.load("val", "ADE_val_00000001")
    with pytest.raises(SkipSample, match=r"ADE_val_00000002\.png is 24x8 but its image ADE_val_00000002\.jpg is 24x16"):
        source.load("val", "ADE_val_00000002")
    with pytest.raises(SkipSample, match=r"ADE_train_00000007\.jpg is not a readable image"):
        source.load("train", "ADE_train_00000007")
    with pytest.raises(SpadekitError, match=r"Every source file of split 'val' was skipped \(2 of 2; the first, "
                       r"'ADE_val_00000001': .*ADE_val_00000001\.png is a colour image"):
        prepare("ade20k", tmp_path / "shards", src=root, splits=["val"])
    assert not (tmp_path / "shards" / "manifest.json").exists()
