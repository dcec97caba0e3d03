"""The command line end to end, as a user runs it: the entry point, --help, --version and a user error's exit
status in subprocesses; the other commands in this process (the `cli` fixture), which spares a Python start-up
each."""

from __future__ import annotations

import numpy as np
from PIL import Image

from spadekit import __version__
from spadekit.data.reader import SplitReader
from tests.conftest import run_cli


def test_help_and_version():  # a real process: the installed entry point
    assert "prepare" in run_cli("--help").stdout
    assert run_cli("--version").stdout.strip() == f"spadekit {__version__}"


def test_prepare_verify_show_export_on_toyscapes(tmp_path, cli):
    shards, grid, files = tmp_path / "shards", tmp_path / "grid.png", tmp_path / "files"
    sets = ["--set", "num_train=6", "--set", "num_val=3", "--set", "size=64", "--set", "shard_size=4"]
    out = cli("prepare", "toyscapes", "--out", str(shards), "--workers", "2", *sets)
    assert "classes seen" in out.stdout and "manifest.json written" in out.stdout
    assert "is sound" in cli("data", "verify", str(shards)).stdout
    cli("data", "show", str(shards), "--out", str(grid), "--n", "3")
    assert Image.open(grid).size[1] == 3 * 128 + 2 * 4
    cli("data", "export", str(shards), "--out", str(files), "--split", "val")
    sample = SplitReader(shards, "val").read(2)
    folder = files / "val"
    assert np.array_equal(np.asarray(Image.open(folder / "images" / f"{sample.key}.png")), sample.image)
    assert np.array_equal(np.asarray(Image.open(folder / "labels" / f"{sample.key}.png")), sample.label)
    assert np.array_equal(np.asarray(Image.open(folder / "instances" / f"{sample.key}.png")), sample.instance)
    assert len(list((folder / "images").iterdir())) == 3 and not (files / "train").exists()


def test_user_error_is_one_sentence_without_traceback(tmp_path):  # a real process: exit status and stderr
    proc = run_cli("data", "verify", str(tmp_path / "nowhere"), check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:") and "nowhere" in proc.stderr
    debug = run_cli("--debug", "data", "verify", str(tmp_path / "nowhere"), check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_damaged_shard_fails_verify_naming_it(toy_shards, tmp_path, cli):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(toy_shards, copy)
    victim = copy / "val-00000-of-00001.h5"
    data = bytearray(victim.read_bytes())
    data[-100] ^= 1
    victim.write_bytes(bytes(data))
    proc = cli("data", "verify", str(copy), check=False)
    assert proc.returncode == 1
    assert "DAMAGED val-00000-of-00001.h5" in proc.stdout
    assert "ok      train-00000-of-00003.h5" in proc.stdout
    assert "val-00000-of-00001.h5" in proc.stderr


def test_bad_set_syntax_is_a_user_error(tmp_path, cli):
    proc = cli("prepare", "toyscapes", "--out", str(tmp_path / "x"), "--set", "size", check=False)
    assert proc.returncode == 1 and "key=value" in proc.stderr
