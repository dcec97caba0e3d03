"""Faults a user can cause around shards: each is one sentence (exit 1), and a refused command changes nothing.

Damaged shards reach every reader that promises exact data (export, show, the training and bench datasets);
prepare refuses bad settings, absurd worker counts, damaged records and unwritable folders before writing,
and a write failure part-way leaves a folder that `--resume` completes. Disk-full and read-only folders are
simulated in-process: the tests run as root, whom chmod does not stop.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, ConfigDict

from spadekit.data import DatasetFacts, Sample, SkipSample
from spadekit.errors import SpadekitError
from spadekit.registry import PluginSpec

TINY = {"num_train": 4, "num_val": 2, "size": 64, "shard_size": 2}


# --- a dataset plugin whose files a test can break (registered through SPADEKIT_PLUGINS) ---------------


class BrokenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokenSource:
    """Train a..d and val e, f (8x6, with instance maps); the keys listed in SRC/broken.txt are unusable."""

    facts = DatasetFacts(name="broken", class_names=["x", "y"], palette=[(0, 0, 0), (9, 9, 9)], has_instances=True)

    def __init__(self, src: Path):
        self.src = Path(src)

    def splits(self) -> list[str]:
        return ["train", "val"]

    def keys(self, split: str) -> list[str]:
        return list("abcd") if split == "train" else list("ef")

    def load(self, split: str, key: str) -> Sample:
        marker = self.src / "broken.txt"
        if marker.is_file() and key in marker.read_text().split():
            raise SkipSample(f"images/{key}.png is not a readable image")
        label = np.full((6, 8), ord(key) % 2, np.uint8)
        return Sample(key, np.full((6, 8, 3), ord(key), np.uint8), label, label.astype(np.int32))


broken = PluginSpec(
    kind="datasets",
    name="broken",
    summary="Six tiny samples, some unusable on demand (tests only).",
    options=BrokenOptions,
    factory=lambda options, src=None: BrokenSource(src),
)


@pytest.fixture()
def broken_src(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SPADEKIT_PLUGINS", "broken=tests.test_faults_data:broken")
    src = tmp_path / "src"
    src.mkdir()
    return src


# --- helpers -------------------------------------------------------------------------------------------


def damaged_copy(toy_shards: Path, tmp_path: Path, how: str, name: str = "train-00000-of-00003.h5") -> Path:
    """A copy of the session's toy shards with one shard damaged `how`; returns the copy's folder."""
    copy = tmp_path / f"shards-{how}"
    shutil.copytree(toy_shards, copy)
    shard = copy / name
    if how == "pixel":  # one byte of the stored image pixels: every structure still parses
        with h5py.File(shard, "r") as f:
            offset = f["image"].id.get_offset()
        _xor(shard, offset + 10)
    elif how == "truncated":
        os.truncate(shard, shard.stat().st_size // 2)
    elif how == "empty":
        shard.write_bytes(b"")
    elif how == "deleted":
        shard.unlink()
    elif how == "metadata":  # the object header of the "shapes" dataset: the file opens, the dataset does not
        with h5py.File(shard, "r") as f:
            header = h5py.h5o.get_info(f["shapes"].id).addr
        _xor(shard, *range(header, header + 16))
    return copy


def _xor(path: Path, *offsets: int) -> None:
    data = bytearray(path.read_bytes())
    for offset in offsets:
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` (hidden ones too) with its bytes and mtime: 'changes nothing' made testable."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def cli(capsys, *args: str) -> tuple[int, str]:
    """The command line in this process (so that monkeypatches hold); returns (exit code, stderr)."""
    from spadekit.cli.main import run

    try:
        run(list(args))
        code = 0
    except SystemExit as done:
        code = done.code
    return code, capsys.readouterr().err


def one_sentence(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    return lines[0]


def tiny_prepare(out: Path, **kwargs):
    from spadekit.data.prepare import prepare

    return prepare("toyscapes", out, settings=dict(TINY), **kwargs)


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory) -> dict[str, str]:
    """Checksums of an uninterrupted tiny toyscapes preparation, to compare resumed ones with."""
    from spadekit.data.manifest import Manifest

    out = tmp_path_factory.mktemp("reference") / "shards"
    tiny_prepare(out)
    return {s.file: s.sha256 for info in Manifest.load(out).splits.values() for s in info.shards}


def checksums(out: Path) -> dict[str, str]:
    from spadekit.data.manifest import Manifest

    return {s.file: s.sha256 for info in Manifest.load(out).splits.values() for s in info.shards}


# --- 1. exact readers verify the shards ----------------------------------------------------------------


def test_export_and_show_refuse_a_flipped_pixel_byte(toy_shards, tmp_path, capsys):
    copy = damaged_copy(toy_shards, tmp_path, "pixel")
    for args in (("data", "export", str(copy), "--out", str(tmp_path / "files")),
                 ("data", "show", str(copy), "--out", str(tmp_path / "grid.png"))):
        code, err = cli(capsys, *args)  # in this process
        line = one_sentence(err)
        assert code == 1
        assert "train-00000-of-00003.h5" in line and "sha256" in line and "spadekit data verify" in line
    assert not (tmp_path / "files").exists() and not (tmp_path / "grid.png").exists()


def test_training_and_bench_datasets_refuse_a_flipped_pixel_byte(toy_shards, tmp_path):
    from spadekit.bench.eval_split import eval_dataset
    from spadekit.data.dataset import ShardDataset

    copy = damaged_copy(toy_shards, tmp_path, "pixel", name="val-00000-of-00001.h5")
    ShardDataset(copy, "train")  # the sound split still loads
    with pytest.raises(SpadekitError, match=r"Shard .*val-00000-of-00001\.h5 does not match its sha256"):
        ShardDataset(copy, "val", train=False)
    with pytest.raises(SpadekitError, match=r"val-00000-of-00001\.h5 .*`spadekit data verify"):
        eval_dataset(copy, "val", SimpleNamespace(crop_size=64, aspect_ratio=1.0), num=2)


def test_a_shard_is_hashed_once_per_process_and_workers_inherit_it(toy_shards, tmp_path, monkeypatch):
    from spadekit.data import shards
    from spadekit.data.reader import SplitReader

    copy = tmp_path / "copy"
    shutil.copytree(toy_shards, copy)
    reader = SplitReader(copy, "val")
    reader.read(0)
    hashed = []
    monkeypatch.setattr(shards, "sha256_file", lambda path: hashed.append(path) or "0" * 64)
    reader.read(1)
    SplitReader(copy, "val").read(2)  # another reader in this process: the file is unchanged
    state = pickle.dumps(reader.shards[0])  # what a spawned DataLoader worker receives
    monkeypatch.setattr(shards, "_VERIFIED", {})  # that worker's fresh memory
    pickle.loads(state).read(3)
    assert hashed == []
    _xor(copy / "val-00000-of-00001.h5", 100)  # changed after the check: hashed again
    with pytest.raises(SpadekitError, match="does not match its sha256"):
        SplitReader(copy, "val").read(0)
    assert hashed == [copy / "val-00000-of-00001.h5"]


# --- 2. damaged shards outside `data verify` -----------------------------------------------------------


@pytest.mark.parametrize("how", ["truncated", "empty", "deleted", "metadata"])
def test_damaged_shard_is_one_sentence_for_every_reader(toy_shards, tmp_path, how):
    from spadekit.bench.eval_split import eval_dataset
    from spadekit.data.dataset import ShardDataset
    from spadekit.data.export import export
    from spadekit.data.show import show_grid

    copy = damaged_copy(toy_shards, tmp_path, how)
    problem = "is missing" if how == "deleted" else "does not match its sha256 in manifest.json .*"
    expected = rf"Shard .*train-00000-of-00003\.h5 {problem}; `spadekit data verify .*` checks every shard"
    readers = [
        lambda: export(copy, tmp_path / "files"),
        lambda: show_grid(copy, tmp_path / "grid.png"),
        lambda: ShardDataset(copy, "train"),
        lambda: eval_dataset(copy, "train", SimpleNamespace(crop_size=64, aspect_ratio=1.0), num=4),
    ]
    for read in readers:
        with pytest.raises(SpadekitError, match=expected):
            read()
    assert not (tmp_path / "files").exists() and not (tmp_path / "grid.png").exists()


def test_unreadable_shard_with_a_matching_checksum_is_one_sentence(toy_shards, tmp_path):
    """A manifest edited to vouch for a damaged file: h5py's own errors still become the shard's sentence."""
    from spadekit.data.dataset import ShardDataset
    from spadekit.data.export import export
    from spadekit.fileio import sha256_file

    copy = damaged_copy(toy_shards, tmp_path, "metadata")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["splits"]["train"]["shards"][0]["sha256"] = sha256_file(copy / "train-00000-of-00003.h5")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    for read in (lambda: export(copy, tmp_path / "files"), lambda: ShardDataset(copy, "train")[0]):
        with pytest.raises(SpadekitError, match=r"train-00000-of-00003\.h5 cannot be read \(.*\); `spadekit data"):
            read()
    assert not (tmp_path / "files").exists()


def test_export_failing_part_way_leaves_no_files(toy_shards, tmp_path, monkeypatch):
    from spadekit.data import export as export_module

    real, calls = export_module.save_png, []

    def disk_full_after_five(path, array):
        calls.append(path)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, array)

    monkeypatch.setattr(export_module, "save_png", disk_full_after_five)
    fresh, existing = tmp_path / "new" / "files", tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    for out in (fresh, existing):
        calls.clear()
        with pytest.raises(SpadekitError, match=rf"Cannot write {out} \(No space left on device\); free space"):
            export_module.export(toy_shards, out)
    assert not (tmp_path / "new").exists()
    assert [p.name for p in existing.rglob("*")] == ["notes.txt"]


def test_export_refuses_an_existing_split_folder_or_a_file(toy_shards, tmp_path):
    from spadekit.data.export import export

    (tmp_path / "files" / "val").mkdir(parents=True)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SpadekitError, match=r"files/val already exists; delete it or choose another --out"):
        export(toy_shards, tmp_path / "files")
    with pytest.raises(SpadekitError, match=r"afile is a file"):
        export(toy_shards, tmp_path / "afile")
    assert export(toy_shards, tmp_path / "files", ["train"]) == 24
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == ["train", "val"]  # no staging folder left


def test_show_refuses_a_folder_and_reports_a_write_failure(toy_shards, tmp_path, monkeypatch):
    from spadekit.data import show

    with pytest.raises(SpadekitError, match=r"is a folder; give the PNG file to write"):
        show.show_grid(toy_shards, tmp_path)

    def full(path, array):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(show, "save_png", full)
    with pytest.raises(SpadekitError, match=r"Cannot write .*grid\.png \(No space left on device\)"):
        show.show_grid(toy_shards, tmp_path / "grid.png")


# --- 3. a split whose every source file is unusable ----------------------------------------------------


def test_split_with_every_file_skipped_stops_prepare_and_resumes_once_fixed(broken_src, tmp_path):
    from spadekit.data.prepare import prepare
    from spadekit.data.verify import verify

    (broken_src / "broken.txt").write_text("a b c d")
    out = tmp_path / "shards"
    with pytest.raises(SpadekitError, match=r"Every source file of split 'train' was skipped \(4 of 4; the first, "
                       r"'a': images/a.png is not a readable image\); fix those files and run the same command "
                       r"with --resume"):
        prepare("broken", out, src=broken_src, settings={"shard_size": 2})
    assert not (out / "manifest.json").exists() and not list(out.glob("train-*"))
    assert sorted(p.name for p in out.glob("*.h5")) == ["val-00000-of-00001.h5"]
    (broken_src / "broken.txt").write_text("a b")  # fixed, but for the first shard's two files
    summary = prepare("broken", out, src=broken_src, settings={"shard_size": 2}, resume=True)
    assert summary.complete and summary.splits["train"].samples == 2 and summary.written_now == 2
    assert all(check.ok for check in verify(out))  # the empty first shard is sound


def test_cli_reports_the_empty_split_in_one_sentence(broken_src, tmp_path, capsys, monkeypatch):
    (broken_src / "broken.txt").write_text("e f")
    monkeypatch.setenv("SPADEKIT_PLUGINS", "broken=tests.test_faults_data:broken")
    code, err = cli(capsys, "prepare", "broken", "--src", str(broken_src), "--out", str(tmp_path / "s"))
    assert code == 1
    assert "Every source file of split 'val' was skipped (2 of 2" in one_sentence(err)


def test_show_and_verify_agree_on_a_split_without_samples(tmp_path):
    """Shards of an older prepare, which wrote an empty split: show and verify both say so, in one sentence."""
    from spadekit.data.manifest import Manifest, ShardInfo, SplitInfo
    from spadekit.data.shards import write_shard
    from spadekit.data.show import show_grid
    from spadekit.data.verify import verify

    facts = BrokenSource.facts
    digest = write_shard(tmp_path / "train-00000-of-00001.h5", "train", 0, [])
    info = SplitInfo(num_samples=0, shards=[ShardInfo(file="train-00000-of-00001.h5", num_samples=0, sha256=digest)])
    Manifest(dataset=facts, splits={"train": info}).save(tmp_path)
    with pytest.raises(SpadekitError, match=r"Split 'train' of .* holds no samples"):
        show_grid(tmp_path, tmp_path / "grid.png")
    [check] = verify(tmp_path)
    assert "holds no samples" in check.problem


# --- 4. worker counts ----------------------------------------------------------------------------------


@pytest.fixture()
def two_cpus(monkeypatch):
    from spadekit.data import workers

    monkeypatch.setattr(workers, "available_cpus", lambda: 2)


@pytest.fixture()
def no_pools(monkeypatch):
    """A process pool would be a bug in these tests: fail instead of starting it."""
    import multiprocessing

    def refuse(method=None):
        def pool(processes, *args, **kwargs):
            raise AssertionError(f"a pool of {processes} processes was started")

        return SimpleNamespace(Pool=pool)

    monkeypatch.setattr(multiprocessing, "get_context", refuse)


def test_cap_workers_reduces_with_a_warning_and_refuses_absurd_counts(two_cpus):
    from spadekit.data.workers import cap_workers

    assert cap_workers(0) == 0 and cap_workers(2) == 2
    said = []
    assert cap_workers(8, "--workers", warn=said.append) == 2
    assert said == ["--workers 8 is more than the 2 CPUs available to this process; using 2."]
    with pytest.warns(RuntimeWarning, match="num_workers 3 is more than the 2 CPUs"):
        assert cap_workers(3, "num_workers") == 2
    for absurd in (100000, -1):
        with pytest.raises(SpadekitError, match=rf"--workers {absurd} is not a process count .* use at most 2"):
            cap_workers(absurd)


def test_prepare_refuses_absurd_workers_before_starting_anything(two_cpus, no_pools, tmp_path, capsys):
    code, err = cli(capsys, "prepare", "toyscapes", "--out", str(tmp_path / "s"), "--workers", "100000")
    assert code == 1 and "--workers 100000 is not a process count" in one_sentence(err)
    assert not (tmp_path / "s").exists()


def test_prepare_reduces_workers_to_the_cpus(monkeypatch, no_pools, tmp_path, capsys):
    from spadekit.data import workers

    monkeypatch.setattr(workers, "available_cpus", lambda: 1)
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    code, err = cli(capsys, "prepare", "toyscapes", "--out", str(tmp_path / "s"), "--workers", "64", *sets)
    assert code == 0
    assert "warning: --workers 64 is more than the 1 CPUs available to this process; using 1." in err
    assert (tmp_path / "s" / "manifest.json").is_file()


def test_loader_workers_share_the_cap(two_cpus, toy_shards):
    from spadekit.data.dataset import ShardDataset, make_loader

    with pytest.warns(RuntimeWarning, match="num_workers 5 is more than the 2 CPUs"):
        assert make_loader(ShardDataset(toy_shards, "val"), 2, num_workers=5).num_workers == 2
    with pytest.raises(SpadekitError, match="num_workers 5000 is not a process count"):
        make_loader(ShardDataset(toy_shards, "val"), 2, num_workers=5000)


# --- 5. prepare settings -------------------------------------------------------------------------------


@pytest.mark.parametrize("resize", ["0x-5", "-3", "0", "8193x1"])
def test_bad_resize_is_one_sentence_and_writes_nothing(tmp_path, resize):
    from spadekit.data.prepare import prepare

    with pytest.raises(SpadekitError, match=rf"Invalid value for 'resize' in --set: width and height must be 1 to "
                       rf"8192 pixels \(got '{resize}'\)"):
        prepare("toyscapes", tmp_path / "s", settings={**TINY, "resize": resize})
    assert not (tmp_path / "s").exists()


# --- 6. damaged records on --resume --------------------------------------------------------------------


@pytest.mark.parametrize(
    "victim, content, expected",
    [
        ("prepare.json", '{"dataset": "toys', r"prepare\.json is damaged \(.*\); .* start again without --resume"),
        ("prepare.json", "[1, 2]", r"prepare\.json is damaged \(not a JSON object\)"),
        (".parts/train-00000-of-00002.h5.json", "garbage{", r"train-00000-of-00002\.h5\.json is damaged \(Invalid"),
        (".parts/train-00001-of-00002.h5.json", '{"file": "train-00001-of-00002.h5"}',
         r"\.json is damaged \(num_samples: Field required\); delete it and .*train-00001-of-00002\.h5, then run "
         r"the same command with --resume"),
    ],
)
def test_damaged_record_on_resume_is_one_sentence_and_changes_nothing(tmp_path, victim, content, expected):
    out = tmp_path / "s"
    tiny_prepare(out)
    (out / victim).write_text(content)
    os.remove(out / "val-00000-of-00001.h5")  # a shard still to write: a resume that went ahead would write it
    before = snapshot(out)
    with pytest.raises(SpadekitError, match=expected):
        tiny_prepare(out, resume=True)
    assert snapshot(out) == before


# --- 7. write failures during prepare ------------------------------------------------------------------


def test_out_naming_a_file_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out in (afile, afile / "sub"):
        with pytest.raises(SpadekitError, match=rf"--out {out}: {afile} is a file; choose a folder"):
            tiny_prepare(out)
    assert afile.read_text() == "mine"


def _read_only(monkeypatch, folder: Path) -> None:
    """Make creating anything under `folder` fail as on a read-only mount (EROFS)."""
    import builtins

    real_mkdir, real_open = os.mkdir, builtins.open

    def inside(path) -> bool:
        return Path(os.fsdecode(path)).resolve().is_relative_to(folder.resolve())

    def mkdir(path, *args, **kwargs):
        if inside(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and isinstance(file, (str, Path)) and inside(file):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(builtins, "open", open_)


@pytest.mark.parametrize("exists", [False, True])
def test_read_only_output_is_one_sentence_and_leaves_it_as_it_was(tmp_path, monkeypatch, exists):
    out = tmp_path / "ro" / "shards"
    if exists:
        out.mkdir(parents=True)
    _read_only(monkeypatch, tmp_path / "ro")
    with pytest.raises(SpadekitError, match=r"Cannot write .*ro/shards.* \(Read-only file system\); choose a "
                       r"writable --out"):
        tiny_prepare(out)
    monkeypatch.undo()
    assert (list(out.iterdir()) == []) if exists else not (tmp_path / "ro").exists()


def test_disk_full_while_writing_a_shard_leaves_a_resumable_folder(tmp_path, monkeypatch, tiny_reference):
    from spadekit.data import shards

    real, calls = shards._write_h5, []

    def fills_the_disk(tmp, *args):
        calls.append(tmp)
        if len(calls) == 2:  # the second shard: some bytes reach the disk, then it is full
            Path(tmp).write_bytes(b"\x89HDF\r\n" + b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        real(tmp, *args)

    monkeypatch.setattr(shards, "_write_h5", fills_the_disk)
    out = tmp_path / "s"
    with pytest.raises(SpadekitError, match=r"Cannot write .*train-00001-of-00002\.h5 \(No space left on device\); "
                       r"free space .* then run the same command with --resume to continue"):
        tiny_prepare(out)
    assert sorted(p.name for p in out.iterdir()) == [".parts", "prepare.json", "train-00000-of-00002.h5"]
    monkeypatch.undo()
    monkeypatch.setattr(shards, "_write_h5", real)
    assert tiny_prepare(out, resume=True).written_now == 2
    assert checksums(out) == tiny_reference


def test_disk_full_while_writing_a_record_leaves_no_partial_record(tmp_path, monkeypatch, tiny_reference):
    real_fsync = os.fsync

    def fsync(fd):
        if "/.parts/.train-00000" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "s"
    with pytest.raises(SpadekitError, match=r"Cannot write .*\.parts/train-00000-of-00002\.h5\.json \(No space"):
        tiny_prepare(out)
    assert list((out / ".parts").iterdir()) == [] and not (out / "manifest.json").exists()
    monkeypatch.undo()
    tiny_prepare(out, resume=True)
    assert checksums(out) == tiny_reference


def test_exported_pixels_are_still_exact(toy_shards, tmp_path):
    """The checks cost nothing in exactness: export writes the stored pixels, byte for byte."""
    from spadekit.data.export import export
    from spadekit.data.reader import SplitReader

    export(toy_shards, tmp_path / "files", ["val"])
    sample = SplitReader(toy_shards, "val").read(5)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "files/val/images" / f"{sample.key}.png")), sample.image)
