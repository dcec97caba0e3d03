"""`spadekit segmenter predict`: label PNGs at each photo's size, in the ids of the segmenter's dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLOURS = {"sky": [70, 130, 180], "grass": [40, 160, 40], "water": [20, 40, 200]}
PLUGIN = {"SPADEKIT_PLUGINS": "colours=tests.fixture_segmenters:colours"}


def _photo(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    """A photo of the three class colours in vertical bands, with the ids it shows."""
    ids = np.random.default_rng(seed).integers(0, 3, size=(1, width)).repeat(height, axis=0)
    pixels = np.array(list(COLOURS.values()), np.uint8)[ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return ids


def _huge(path: Path) -> Path:
    """A small file declaring a 9000x9000 photo (an 81-megapixel header)."""
    Image.new("L", (9000, 9000)).save(path, optimize=True)
    return path


@pytest.fixture()
def photos(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path / "photos"
    truth = {stem: _photo(folder / f"{stem}.png", h, w, seed)
             for seed, (stem, h, w) in enumerate([("a", 20, 30), ("b", 20, 30), ("c", 17, 41), ("d", 20, 30)])}
    (tmp_path / "colours.json").write_text(json.dumps(COLOURS))
    return folder, truth


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.mark.parametrize("offset", [0, 1])
def test_predict_writes_each_photo_at_its_size_in_the_datasets_ids(photos, tmp_path, offset, cli):
    folder, truth = photos
    out = tmp_path / "out"
    proc = cli("segmenter", "predict", str(folder), "--segmenter", "colours", "--checkpoint",
               str(tmp_path / "colours.json"), "--out", str(out), "--batch-size", "2",
               "--set", f"file_id_offset={offset}", env=PLUGIN)
    assert "4 label maps" in proc.stdout
    for stem, ids in truth.items():
        label = _read(out / f"{stem}.png")
        assert label.dtype == np.uint8 and label.shape == ids.shape  # the photo's own size
        assert np.array_equal(label, ids + offset)


def test_predict_takes_single_photos_and_folders_together(photos, tmp_path, cli):
    folder, truth = photos
    other = tmp_path / "more" / "e.jpg"
    _photo(other.with_suffix(".png"), 12, 12, 9)
    Image.open(other.with_suffix(".png")).save(other, quality=100)
    other.with_suffix(".png").unlink()
    cli("segmenter", "predict", str(folder / "c.png"), str(other), "--segmenter", "colours", "--checkpoint",
        str(tmp_path / "colours.json"), "--out", str(tmp_path / "out"), env=PLUGIN)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c.png", "e.png"]


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "nowhere.png", "nowhere.png does not exist"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "holds no photos"),
    (lambda root: (root / "bad.png").write_bytes(b"not a png") and root / "bad.png", "bad.png is not a readable image"),
    (lambda root: _huge(root / "huge.png"), "huge.png is 9000x9000 pixels, over 40 megapixels"),
])
def test_bad_inputs_are_one_sentence_and_write_nothing(photos, tmp_path, make, message, cli):
    proc = cli("segmenter", "predict", str(make(tmp_path)), "--segmenter", "colours", "--checkpoint",
               str(tmp_path / "colours.json"), "--out", str(tmp_path / "out"), env=PLUGIN, check=False)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_paper_segmenter_without_its_weights_names_the_file_and_where_it_is_published(photos, tmp_path, cli):
    folder, _ = photos
    proc = cli("segmenter", "predict", str(folder), "--segmenter", "drn", "--out", str(tmp_path / "out"),
               env={"TORCH_HOME": str(tmp_path / "torch")}, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "drn-d-105_ms_cityscapes.pth" in proc.stderr and "torch hub cache" in proc.stderr
    assert "http" in proc.stderr
