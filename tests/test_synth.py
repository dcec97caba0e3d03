"""`spadekit synth` on tiny toyscapes runs: masks (index, colour, folders), style photos, samples, seeds."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadekit.data.palette import colourize
from spadekit.data.reader import SplitReader
from spadekit.imageio import save_png
from spadekit.images import GAP
from spadekit.train.loop import TrainJob, train
from tests.conftest import run_cli, tiny_recipe


@pytest.fixture(scope="module")
def runs(tiny_run, toy_shards, tmp_path_factory) -> dict[str, Path]:
    """A VAE SPADE and a plain one (no encoder), 2 steps each. The VAE one is a copy of the session's run (the
    same recipe): a test here touches its checkpoint."""
    root = tmp_path_factory.mktemp("synth")
    made = {"vae": Path(shutil.copytree(tiny_run, root / "vae")), "plain": root / "plain"}
    train(TrainJob(tiny_recipe(toy_shards, **{"train.max_steps": 2, "model.use_vae": False}), made["plain"]))
    return made


@pytest.fixture(scope="module")
def sample(toy_shards):
    return SplitReader(toy_shards, "val").read(0)


@pytest.fixture()
def synth(cli, monkeypatch):
    """`spadekit synth ARGS` in this process (the `cli` fixture), run from `cwd` when given."""

    def run(*args: str, cwd: Path | None = None, check: bool = True):
        with monkeypatch.context() as patch:
            if cwd is not None:
                patch.chdir(cwd)
            return cli("synth", *args, check=check)

    return run


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_index_and_colour_masks_give_the_same_image(runs, sample, tmp_path, synth):
    from spadekit.run_info import RunInfo

    facts = RunInfo.load(runs["vae"]).facts
    save_png(tmp_path / "index.png", sample.label)
    save_png(tmp_path / "colour.png", colourize(sample.label, facts))
    for name in ("index", "colour"):
        synth(str(tmp_path / f"{name}.png"), "--run", str(runs["vae"]), "--out", str(tmp_path / f"{name}_out.png"),
              "--precision", "fp32")
    index, colour = _png(tmp_path / "index_out.png"), _png(tmp_path / "colour_out.png")
    assert index.shape == (64, 64, 3) and np.array_equal(index, colour)


def test_a_colour_outside_the_palette_is_named_with_its_pixel_count(runs, sample, tmp_path):
    from spadekit.run_info import RunInfo

    rgb = colourize(sample.label, RunInfo.load(runs["vae"]).facts).copy()
    rgb[:3, :5] = (1, 2, 3)
    save_png(tmp_path / "brush.png", rgb)
    # a real process: `spadekit synth` ends with exit 1 and one sentence (the other cases run in this process)
    proc = run_cli("synth", str(tmp_path / "brush.png"), "--run", str(runs["vae"]), check=False)
    assert proc.returncode == 1 and "(1, 2, 3) in 15 pixels" in proc.stderr and "Traceback" not in proc.stderr


def test_an_id_outside_the_classes_is_named(runs, tmp_path, synth):
    save_png(tmp_path / "bad.png", np.full((8, 8), 40, np.uint8))
    proc = synth(str(tmp_path / "bad.png"), "--run", str(runs["vae"]), check=False)
    assert proc.returncode == 1 and "holds class id 40" in proc.stderr


def test_style_photos_of_any_size_and_aspect_change_the_image(runs, sample, tmp_path, synth):
    save_png(tmp_path / "mask.png", sample.label)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (37, 100, 3), dtype=np.uint8)).save(tmp_path / "wide.jpg")
    Image.fromarray(np.full((300, 90, 3), (250, 120, 40), np.uint8)).save(tmp_path / "tall.png")
    outs = []
    for photo in ("wide.jpg", "tall.png"):
        synth(str(tmp_path / "mask.png"), "--run", str(runs["vae"]), "--style", str(tmp_path / photo),
              "--out", str(tmp_path / f"{photo}.png"), "--precision", "fp32")
        outs.append(_png(tmp_path / f"{photo}.png"))
    assert outs[0].shape == outs[1].shape == (64, 64, 3)
    # a 2-step generator barely uses z (its images differ by less than a grey level), but the encodings differ
    from spadekit.synthesis import Synthesizer

    engine = Synthesizer.load(runs["vae"], precision="fp32")
    wide, tall = (engine.encode_style(np.asarray(Image.open(tmp_path / p).convert("RGB")))
                  for p in ("wide.jpg", "tall.png"))
    assert wide.mu.shape == (8,) and not wide.mu.allclose(tall.mu)


def test_samples_as_a_grid_or_numbered_files_and_the_seed_fixes_them(runs, sample, tmp_path, synth):
    save_png(tmp_path / "mask.png", sample.label)
    vae, mask = str(runs["vae"]), str(tmp_path / "mask.png")
    synth(mask, "--run", vae, "--n", "3", "--seed", "5", "--out", str(tmp_path / "grid.png"))
    grid = _png(tmp_path / "grid.png")
    assert grid.shape == (64, 3 * 64 + 2 * GAP, 3)
    synth(mask, "--run", vae, "--n", "3", "--seed", "5", "--out", str(tmp_path / "files"))
    files = [_png(tmp_path / "files" / f"mask_{k}.png") for k in range(3)]
    assert all(np.array_equal(f, grid[:, k * (64 + GAP) : k * (64 + GAP) + 64]) for k, f in enumerate(files))
    synth(mask, "--run", vae, "--n", "3", "--seed", "6", "--out", str(tmp_path / "other.png"))
    assert not np.array_equal(_png(tmp_path / "other.png"), grid)


def test_a_folder_of_masks_keeps_their_sizes(runs, sample, tmp_path, synth):
    folder = tmp_path / "masks"
    for k, size in enumerate([(100, 50), (64, 64), (30, 90)]):
        label = np.asarray(Image.fromarray(sample.label).resize(size, Image.NEAREST))
        save_png(folder / f"m{k}.png", label)
    synth(str(folder), "--run", str(runs["vae"]), "--keep-size", "--batch-size", "2", "--out", str(tmp_path / "o"))
    assert [_png(tmp_path / "o" / f"m{k}.png").shape[:2] for k in range(3)] == [(50, 100), (64, 64), (90, 30)]


def test_without_run_the_most_recent_run_is_used_and_named(runs, sample, tmp_path, synth):
    (tmp_path / "runs").mkdir()
    for name in ("plain", "vae"):  # vae's checkpoint is touched last
        os.symlink(runs[name], tmp_path / "runs" / name)
        time.sleep(0.01)
        checkpoint = next((runs[name] / "checkpoints").glob("step_*.pt"))
        os.utime(checkpoint)
    save_png(tmp_path / "mask.png", sample.label)
    proc = synth("mask.png", cwd=tmp_path)
    assert "runs/vae (the most recent run under ./runs)" in proc.stdout
    assert (tmp_path / "mask_synth.png").is_file()


def test_a_run_without_encoder_refuses_style_and_samples(runs, sample, tmp_path, synth):
    save_png(tmp_path / "mask.png", sample.label)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "photo.png")
    plain = str(runs["plain"])
    style = synth(str(tmp_path / "mask.png"), "--run", plain, "--style", str(tmp_path / "photo.png"), check=False)
    assert style.returncode == 1 and "has no image encoder" in style.stderr
    many = synth(str(tmp_path / "mask.png"), "--run", plain, "--n", "2", check=False)
    assert many.returncode == 1 and "takes no latent" in many.stderr
    synth(str(tmp_path / "mask.png"), "--run", plain, "--out", str(tmp_path / "plain.png"))
    assert _png(tmp_path / "plain.png").shape == (64, 64, 3)


def test_missing_inputs_are_one_sentence(runs, tmp_path, synth):
    proc = synth(str(tmp_path / "nope.png"), "--run", str(runs["vae"]), check=False)
    assert proc.returncode == 1 and "nope.png does not exist" in proc.stderr
    proc = synth(str(tmp_path / "nope.png"), cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "No trained run under ./runs" in proc.stderr
