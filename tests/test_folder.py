"""The folder dataset plugin on tiny folders of your own data: index and colour labels, instances, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadekit import registry
from spadekit.data.export import export
from spadekit.data.files import read_rgb
from spadekit.data.labelspaces import bit_colormap
from spadekit.data.manifest import Manifest
from spadekit.data.prepare import prepare
from spadekit.data.sample import SkipSample
from spadekit.errors import SpadekitError

W, H = 8, 6
CLASSES = ["sky", "tree", "road"]
COLOURS = {"sky": (70, 130, 180), "tree": (107, 142, 35), "road": (128, 64, 128)}
DONTCARE_COLOUR = (0, 0, 0)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _photo(seed: int, w: int = W, h: int = H) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _label(seed: int, w: int = W, h: int = H) -> np.ndarray:
    label = np.random.default_rng(seed + 100).integers(0, len(CLASSES), (h, w)).astype(np.uint8)
    label[0, :2] = 255  # unlabelled pixels
    return label


def _instance(seed: int, w: int = W, h: int = H) -> np.ndarray:
    instance = _label(seed, w, h).astype(np.uint16)
    instance[3:, 4:] = 1000 + seed  # one object, past 8 bits
    return instance


def _colour_label(ids: np.ndarray) -> np.ndarray:
    colours = np.array([*COLOURS.values(), DONTCARE_COLOUR], np.uint8)
    return colours[np.where(ids == 255, len(CLASSES), ids)]


def _pair(root: Path, rel: str, seed: int, *, suffix=".png", label=True, instance=False) -> None:
    """images/<rel><suffix>, and labels/<rel>.png and instances/<rel>.png as asked."""
    _save(root / "images" / f"{rel}{suffix}", _photo(seed))
    if label:
        _save(root / "labels" / f"{rel}.png", _label(seed))
    if instance:
        _save(root / "instances" / f"{rel}.png", _instance(seed))


def _source(root: Path, **options):
    return registry.get("datasets", "folder").build(options, src=root)


def _no_shard_written(out: Path) -> bool:
    return not list(out.glob("*.h5")) and not list(out.glob(".*.tmp*"))


def test_index_labels_and_instances_prepared_through_the_cli_export_exactly(tmp_path, cli):
    root, out, files = tmp_path / "mydata", tmp_path / "shards", tmp_path / "files"
    _pair(root, "train/t0", 0, instance=True)
    _pair(root, "train/t1", 1, suffix=".jpg", instance=True)
    _pair(root, "train/t2", 2)
    _save(root / "instances/train/t2.png", _label(2))  # an 8-bit instance map
    _pair(root, "val/v0", 3, suffix=".webp", instance=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")

    sets = ["--set", "dontcare=255", "--set", "shard_size=2"]
    proc = cli("prepare", "folder", "--src", str(root), "--out", str(out), *sets)
    assert "done" in proc.stdout and "skipped train/" not in proc.stdout
    export(out, files)

    facts = Manifest.load(out).dataset
    assert facts.name == "mydata" and facts.class_names == CLASSES and facts.palette == bit_colormap(3)
    assert facts.dontcare_id == 255 and facts.has_instances
    exported = sorted(p.relative_to(files).as_posix() for p in files.glob("*/labels/*.png"))
    assert exported == ["train/labels/t0.png", "train/labels/t1.png", "train/labels/t2.png", "val/labels/v0.png"]
    for rel in ("train/t0", "train/t1", "train/t2", "val/v0"):
        split, key = rel.split("/")
        source_image = read_rgb(next((root / "images" / split).glob(f"{key}.*")))
        assert np.array_equal(np.asarray(Image.open(files / split / "images" / f"{key}.png")), source_image)
        for kind in ("labels", "instances"):
            got = np.asarray(Image.open(files / split / kind / f"{key}.png")).astype(np.int64)
            assert np.array_equal(got, np.asarray(Image.open(root / kind / f"{rel}.png")).astype(np.int64)), kind


def test_colour_labels_come_back_as_the_palette_ids(tmp_path):
    root, out, files = tmp_path / "painted", tmp_path / "shards", tmp_path / "files"
    palette = root / "palette.txt"
    palette.parent.mkdir(parents=True)
    lines = ["# R G B name", *(f"{r} {g} {b} {name}" for name, (r, g, b) in COLOURS.items()), "", "0 0 0 dontcare"]
    palette.write_text("\n".join(lines) + "\n")
    for i, key in enumerate(["a", "b", "c"]):
        _save(root / "images" / f"{key}.png", _photo(i))
        _save(root / "labels" / f"{key}.png", _colour_label(_label(i)))
    odd = _colour_label(_label(2))
    odd[4:, 6:] = (1, 2, 3)  # 2 x 2 pixels of a colour the palette does not list
    _save(root / "labels/c.png", odd)

    summary = prepare("folder", out, src=root, settings={"palette": str(palette), "dontcare": 255})
    assert summary.splits["train"].samples == 2
    [(key, reason)] = summary.splits["train"].skipped
    assert key == "c" and "(1, 2, 3) in 4 pixels" in reason and str(palette) in reason
    assert summary.facts.class_names == CLASSES and summary.facts.palette == list(COLOURS.values())
    export(out, files)
    for i, key in enumerate(["a", "b"]):
        assert np.array_equal(np.asarray(Image.open(files / "train/labels" / f"{key}.png")), _label(i))


def test_unpaired_files_are_skipped_and_listed_from_both_sides(tmp_path):
    root = tmp_path / "data"
    _pair(root, "a", 0)
    _pair(root, "b", 1, label=False)  # photo without label
    _save(root / "labels/c.png", _label(2))  # label without photo
    summary = prepare("folder", tmp_path / "out", src=root, settings={"num_classes": 3, "dontcare": 255})
    skipped = summary.splits["train"].skipped
    assert [key for key, _ in skipped] == ["b", "c"] and summary.splits["train"].samples == 1
    assert "b.png has no label map" in skipped[0][1] and "labels/b.png is missing" in skipped[0][1]
    assert "labels/c.png has no photo" in skipped[1][1]

    with pytest.raises(SpadekitError, match="'b' \\(train\\) cannot be used: .*has no label map"):
        prepare("folder", tmp_path / "strict", src=root, settings={"num_classes": 3, "dontcare": 255}, strict=True)
    assert _no_shard_written(tmp_path / "strict")


def test_bad_files_are_skipped_with_a_reason(tmp_path):
    root = tmp_path / "data"
    for i, key in enumerate(["corrupt", "small_label", "no_instance", "small_instance", "colour", "twice"]):
        _pair(root, key, i, instance=key != "no_instance")
    path = root / "images/corrupt.png"
    path.write_bytes(path.read_bytes()[:60])
    _save(root / "labels/small_label.png", _label(1, w=4, h=3))
    _save(root / "instances/small_instance.png", _instance(3, w=4, h=3))
    _save(root / "labels/colour.png", _colour_label(_label(4)))
    _save(root / "images/twice.jpg", _photo(5))
    source = _source(root, num_classes=3, dontcare=255)
    expected = {
        "corrupt": "corrupt.png is not a readable image",
        "small_label": "small_label.png is 4x3 but its image small_label.png is 8x6",
        "no_instance": "no_instance.png has no instance map",
        "small_instance": "small_instance.png is 4x3 but its image",
        "colour": "colour image .*--set palette=PATH \\(one line `R G B name` per class id",
        "twice": "holds 2 files named 'twice' \\(twice.jpg, twice.png\\)",
    }
    for key, message in expected.items():
        with pytest.raises(SkipSample, match=message):
            source.load("train", key)


def test_label_id_outside_the_label_space_stops_prepare_naming_the_sample(tmp_path):
    root = tmp_path / "data"
    _pair(root, "a", 0)
    label = _label(1)
    label[2, 2] = 7
    _pair(root, "b", 1, label=False)
    _save(root / "labels/b.png", label)
    with pytest.raises(SpadekitError, match="'b' \\(train\\) holds id 7"):
        prepare("folder", tmp_path / "out", src=root, settings={"num_classes": 3, "dontcare": 255})
    assert _no_shard_written(tmp_path / "out")


def test_wrong_layout_names_the_expected_one(tmp_path):
    with pytest.raises(SpadekitError, match="does not exist"):
        _source(tmp_path / "nowhere")
    (tmp_path / "photos").mkdir()
    _save(tmp_path / "photos/a.jpg", _photo(0))
    with pytest.raises(SpadekitError, match="photos/images is missing; --src must be laid out as SRC/images/<stem>"):
        prepare("folder", tmp_path / "out", src=tmp_path / "photos")
    assert not (tmp_path / "out").exists()
    root = tmp_path / "split"
    _pair(root, "train/a", 0)
    _pair(root, "b", 1)
    with pytest.raises(SpadekitError, match="holds both photos \\(b.png, ...\\) and sub-folders \\(train, ...\\)"):
        _source(root, num_classes=3)
    (root / "images/b.png").unlink()
    _save(root / "images/val/c.png", _photo(2))
    with pytest.raises(SpadekitError, match="labels/val is missing: .*must mirror"):
        _source(root, num_classes=3)


@pytest.mark.parametrize(
    "files, options, message",
    [
        ({}, {}, "label space of .* is unknown: write the class names to .*classes.txt"),
        ({"classes.txt": "sky\ntree\n"}, {"num_classes": 3}, "num_classes=3, but .*classes.txt lists 2 classes"),
        ({"classes.txt": "sky\n\ntree\n"}, {}, "Line 2 of .*classes.txt is blank"),
        ({}, {"classes": "missing.txt"}, "Class-name file missing.txt does not exist"),
        ({"classes.txt": "sky\ntree\n"}, {"dontcare": 1}, "dontcare=1 is class id 1 \\('tree'\\)"),
        (
            {"p.txt": "1 2 3 sky\n4 5 6 rock\n", "classes.txt": "sky\ntree\n"},
            {"palette": "p.txt"},
            "list different classes \\(class id 1 is 'tree' in one and 'rock' in the other\\)",
        ),
        ({"p.txt": "1 2 3 sky\n0 0 0 dontcare\n"}, {"palette": "p.txt"}, "gives a `dontcare` colour; .*dontcare=ID"),
        ({"p.txt": "1 2 3 sky\n4 5 sky\n"}, {"palette": "p.txt"}, "Line 2 of .*p.txt is '4 5 sky', not `R G B name`"),
        ({"p.txt": "1 2 3 sky\n1 2 3 sea\n"}, {"palette": "p.txt"}, "Line 2 of .*p.txt repeats colour \\(1, 2, 3\\)"),
    ],
)
def test_label_space_problems_are_named(tmp_path, monkeypatch, files, options, message):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    _pair(root, "a", 0)
    for name, text in files.items():
        (root / name if name == "classes.txt" else tmp_path / name).write_text(text)
    with pytest.raises(SpadekitError, match=message):
        _source(root, **options)


def test_class_names_from_a_file_option_or_the_palette_alone(tmp_path):
    root = tmp_path / "data"
    _pair(root, "a", 0)
    (tmp_path / "names.txt").write_text("sky\ntree\nroad\n\n")
    assert _source(root, classes=str(tmp_path / "names.txt")).facts.class_names == CLASSES
    (tmp_path / "p.txt").write_text("70 130 180 blue sky\n1 1 1 tree\n")
    facts = _source(root, palette=str(tmp_path / "p.txt"), name="mine").facts
    assert facts.class_names == ["blue sky", "tree"] and facts.palette == [(70, 130, 180), (1, 1, 1)]
    assert facts.name == "mine" and not facts.has_instances and facts.dontcare_id is None
