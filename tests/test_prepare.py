"""prepare: resumable, splittable across machines, identical shards however it is run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from spadekit.data.manifest import Manifest
from spadekit.data.prepare import prepare
from spadekit.data.reader import SplitReader
from spadekit.data.verify import verify
from spadekit.errors import SpadekitError
from tests.conftest import REPO, TOY_SETTINGS


def checksums(root):
    return {s.file: s.sha256 for info in Manifest.load(root).splits.values() for s in info.shards}


def test_prepare_writes_manifest_with_facts_and_checksums(toy_shards):
    manifest = Manifest.load(toy_shards)
    assert manifest.dataset.name == "toyscapes" and manifest.dataset.has_instances
    assert manifest.dataset.label_nc >= 8
    assert {s: i.num_samples for s, i in manifest.splits.items()} == {"train": 24, "val": 8}
    assert len(manifest.splits["train"].shards) == 3
    assert all(check.ok for check in verify(toy_shards))


def test_two_workers_give_the_same_shards_as_one(toy_shards, tmp_path):
    prepare("toyscapes", tmp_path / "w2", settings=dict(TOY_SETTINGS), workers=2)
    assert checksums(tmp_path / "w2") == checksums(toy_shards)


def test_parts_of_a_job_array_together_equal_one_run(toy_shards, tmp_path):
    out = tmp_path / "parts"
    first = prepare("toyscapes", out, settings=dict(TOY_SETTINGS), shard_index=0, num_shards=2)
    assert not first.complete and not (out / "manifest.json").exists()
    last = prepare("toyscapes", out, settings=dict(TOY_SETTINGS), shard_index=1, num_shards=2, resume=True)
    assert last.complete
    assert checksums(out) == checksums(toy_shards)


def test_killed_prepare_resumes_to_identical_shards(toy_shards, tmp_path):
    out = tmp_path / "killed"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SPADEKIT_PLUGINS": "slowtoys=tests.fixture_plugins:slowtoys",
        "SLOWTOYS_SECONDS": "0.05",
    }
    sets = [a for k, v in TOY_SETTINGS.items() for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "spadekit.cli.main", "prepare", "slowtoys", "--out", str(out), *sets]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list((out / ".parts").glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up: as a power cut or an OOM kill
    proc.wait()
    assert not (out / "manifest.json").exists(), "the run finished before it was killed"
    subprocess.run([*cmd, "--resume"], env={**env, "SLOWTOYS_SECONDS": "0"}, check=True, capture_output=True)
    assert checksums(out) == checksums(toy_shards)
    assert not list(out.glob(".*.tmp*"))


def test_resume_does_not_rewrite_finished_shards(toy_shards, tmp_path):
    out = tmp_path / "again"
    prepare("toyscapes", out, settings=dict(TOY_SETTINGS))
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    summary = prepare("toyscapes", out, settings=dict(TOY_SETTINGS), resume=True)
    assert summary.written_now == 0 and summary.complete
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")} == before


def test_existing_output_needs_resume_and_the_same_settings(toy_shards):
    with pytest.raises(SpadekitError, match="--resume"):
        prepare("toyscapes", toy_shards, settings=dict(TOY_SETTINGS))
    with pytest.raises(SpadekitError, match="different options"):
        prepare("toyscapes", toy_shards, settings={**TOY_SETTINGS, "seed": 5}, resume=True)


def test_non_empty_folder_without_shards_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SpadekitError, match="not empty"):
        prepare("toyscapes", tmp_path, settings=dict(TOY_SETTINGS))


def test_unknown_setting_names_the_nearest_option(tmp_path):
    with pytest.raises(SpadekitError, match="did you mean 'num_train'"):
        prepare("toyscapes", tmp_path / "x", settings={"num_trian": 3})


@pytest.mark.parametrize("key,value", [("shard_size", 0), ("resize", "big"), ("size", 9999)])
def test_bad_setting_value_is_a_user_error_naming_the_key(tmp_path, key, value):
    with pytest.raises(SpadekitError, match=f"'{key}'"):
        prepare("toyscapes", tmp_path / "x", settings={key: value})
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_unknown_split_lists_the_available_ones(tmp_path):
    with pytest.raises(SpadekitError, match="train, val"):
        prepare("toyscapes", tmp_path / "x", splits=["test"], settings=dict(TOY_SETTINGS))


def test_resize_at_prepare_time_stores_the_requested_size(tmp_path):
    out = tmp_path / "resized"
    prepare("toyscapes", out, settings={**TOY_SETTINGS, "resize": "96x48"}, splits=["val"])
    sample = SplitReader(out, "val").read(0)
    assert sample.image.shape == (48, 96, 3) and sample.label.shape == (48, 96)
    assert set(sample.label.ravel().tolist()) <= set(range(Manifest.load(out).dataset.label_nc))
    assert Manifest.load(out).resize == (96, 48)


def test_skipped_files_are_reported_and_left_out(tmp_path, monkeypatch):
    monkeypatch.setenv("SPADEKIT_PLUGINS", "messy=tests.fixture_plugins:messy")
    summary = prepare("messy", tmp_path / "m")
    assert summary.splits["train"].samples == 4
    assert summary.splits["train"].skipped == [("b", "labels/b.png is missing")]
    assert SplitReader(tmp_path / "m", "train").shards[0].keys == ["a", "c", "d", "e"]


@pytest.mark.parametrize("workers", [1, 2])
def test_strict_stops_at_a_skipped_file_and_writes_no_shard(tmp_path, monkeypatch, workers, cli):
    monkeypatch.setenv("SPADEKIT_PLUGINS", "messy=tests.fixture_plugins:messy")
    with pytest.raises(SpadekitError, match="'b' \\(train\\) cannot be used: labels/b.png is missing.*--strict"):
        prepare("messy", tmp_path / "m", workers=workers, strict=True)
    assert not list((tmp_path / "m").glob("*.h5")) and not list((tmp_path / "m").glob(".*.tmp*"))
    proc = cli(
        "prepare",
        "messy",
        "--out",
        str(tmp_path / "cli"),
        "--strict",
        check=False,
        env={"SPADEKIT_PLUGINS": "messy=tests.fixture_plugins:messy"},
    )
    assert proc.returncode == 1 and "labels/b.png is missing" in proc.stderr and "Traceback" not in proc.stderr


def test_label_id_out_of_range_names_the_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("SPADEKIT_PLUGINS", "messy=tests.fixture_plugins:messy")
    with pytest.raises(SpadekitError, match="'c'.* id 200"):
        prepare("messy", tmp_path / "m", settings={"bad_label": True})


def test_flipped_byte_is_reported_by_shard_name(toy_shards, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(toy_shards, copy)
    target = copy / "train-00001-of-00003.h5"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    bad = [c for c in verify(copy) if not c.ok]
    assert [c.file for c in bad] == ["train-00001-of-00003.h5"]
    assert "checksum" in bad[0].problem
    json.loads((copy / "manifest.json").read_text())  # the manifest itself is untouched
