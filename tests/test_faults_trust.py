"""Faults a user or the machine can cause in train, bench and synth, and the trust rules around them.

Nothing a user or a run directory names is unpickled with code execution allowed (by spadekit or by
torch-fidelity); a refused command changes nothing on disk; checkpoints carry a checksum; a killed or failed
checkpoint write leaves nothing behind; absurd process counts are refused. Each test plants what a user, an
attacker or a broken disk would leave and checks the command's answer: one sentence, exit 1, no traceback.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spadekit.bench import fid
from spadekit.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from spadekit.cli import main as cli_main
from spadekit.config import load_recipe
from spadekit.errors import SpadekitError
from spadekit.imageio import save_png
from spadekit.train import distributed
from spadekit.train.loop import TrainJob, train
from tests.conftest import REPO
from tests.test_bench import _random_inception
from tests.test_train import TINY, _write_recipe


class _WritesMarker:
    """Unpickling this calls open(marker, "w"): the marker file appears if and only if the file's code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant_code(path: Path, marker: Path) -> Path:
    """A file that looks like a state dict and runs code when unpickled without weights_only."""
    torch.save({"Conv2d_1a_3x3.conv.weight": _WritesMarker(marker)}, path)
    return path


def _recipe(shards: Path, **overrides):
    return load_recipe(None, {**TINY, "data.shards": str(shards), **overrides})


def _one_sentence(proc: subprocess.CompletedProcess, *names: str) -> str:
    """The command failed with exit 1 and one 'error:' line naming `names`; the line, unwrapped."""
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and text.count("error:") == 1, proc.stderr
    for name in names:
        assert name in text, text
    return text


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def run(tiny_run) -> Path:
    """The session's 2-step run (tests/conftest.py `tiny_run`); tests that change it work on a copy (`_copy`)."""
    return tiny_run


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    for name, folder in (("SPADEKIT_CACHE", "cache"), ("TORCH_HOME", "torch")):
        monkeypatch.setenv(name, str(tmp_path / folder))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def inception(tmp_path_factory) -> Path:
    return _random_inception(tmp_path_factory.mktemp("inception") / "incep.pth")


# ------------------------------------------------------------------ 1. nothing unpickled with code execution

def test_fid_weights_that_would_run_code_are_refused_before_anything_is_written(run, tmp_path, cache, cli):
    copy, marker = _copy(run, tmp_path), tmp_path / "marker"
    evil = _plant_code(tmp_path / "evil.pth", marker)
    before = _snapshot(copy)
    proc = cli("bench", str(copy), "--fid-weights", str(evil), check=False)
    _one_sentence(proc, str(evil))
    assert not marker.exists()
    assert _snapshot(copy) == before


def test_fid_weights_named_by_the_run_config_that_would_run_code_are_refused(run, tmp_path, cache, cli):
    copy, marker = _copy(run, tmp_path), tmp_path / "marker"
    evil = _plant_code(tmp_path / "evil.pth", marker)
    config = copy / "config.toml"
    config.write_text(config.read_text().replace("[bench]\n", f'[bench]\nfid_weights = "{evil}"\n'))
    proc = cli("bench", str(copy), check=False)
    _one_sentence(proc, str(evil))
    assert not marker.exists()


def test_fid_weights_of_random_bytes_are_one_sentence(run, tmp_path, cache, cli):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    proc = cli("bench", str(_copy(run, tmp_path)), "--fid-weights", str(junk), check=False)
    _one_sentence(proc, str(junk))


@pytest.mark.parametrize("content, says", [
    ([torch.zeros(3)], "not a state dict of tensors"),
    ({"fc.weight": torch.zeros(3)}, "do not fit"),
    ({"fc.weight": "text"}, "not a state dict of tensors"),
])
def test_fid_weights_that_are_not_the_inception_state_dict_are_one_sentence(tmp_path, content, says):
    path = tmp_path / "w.pth"
    torch.save(content, path)
    with pytest.raises(SpadekitError, match=says) as caught:
        fid.find_weights(path)
    assert str(path) in str(caught.value)


def test_a_planted_fid_feature_cache_is_never_unpickled_and_is_rebuilt(tmp_path, cache, inception):
    generated, real = tmp_path / "generated", tmp_path / "real"
    rng = np.random.default_rng(0)
    for folder in (generated, real):
        for i in range(4):
            save_png(folder / f"{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    device = torch.device("cpu")
    first = fid.fid_kid(generated, real, 4, inception, "spadekit-real-test", device)
    planted = sorted((cache / "fidelity").iterdir())
    assert planted  # the real set's features were cached
    marker = tmp_path / "marker"
    for path in planted:  # an attacker (or a bad disk) replaces every cached file
        _plant_code(path, marker)
    again = fid.fid_kid(generated, real, 4, inception, "spadekit-real-test", device)
    assert not marker.exists()
    assert again == pytest.approx(first, rel=1e-6)


# ------------------------------------------------------------------ 2. a refused command changes nothing

def test_a_refused_resume_on_changed_shards_leaves_the_run_as_it_was(run, toy_shards, tmp_path, cli):
    shards = Path(shutil.copytree(toy_shards, tmp_path / "shards"))
    copy = tmp_path / "run"
    train(TrainJob(_recipe(shards, **{"train.max_steps": 2}), copy))
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["dataset"]["class_names"].append("lava")  # re-prepared with another label space
    manifest["dataset"]["palette"].append([255, 80, 0])
    (shards / "manifest.json").write_text(json.dumps(manifest))
    before = _snapshot(copy)
    with pytest.raises(SpadekitError, match=f"{shards}.*class_names"):
        train(TrainJob(_recipe(shards, **{"train.max_steps": 4}), copy, resume=True))
    assert _snapshot(copy) == before
    mask = tmp_path / "mask.png"
    save_png(mask, np.zeros((64, 64), dtype=np.uint8))
    cli("synth", str(mask), "--run", str(copy), "--out", str(tmp_path / "out.png"))


def test_a_run_refused_while_setting_up_writes_nothing(toy_shards, tmp_path):
    new = tmp_path / "new"
    with pytest.raises(SpadekitError, match="init_from"):
        train(TrainJob(_recipe(toy_shards, **{"train.init_from": str(tmp_path / "nowhere")}), new))
    assert not new.exists()


# ------------------------------------------------------------------ 3. checkpoints carry a checksum

def _flip_a_bit_of_an_ema_weight(path: Path, weights: str = "ema") -> str:
    """Flip one exponent bit of a float of a tensor of `state[weights]`, in place in the file: what a bad disk
    does."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    data = bytearray(path.read_bytes())
    for name, tensor in state[weights].items():
        if tensor.dtype != torch.float32 or tensor.numel() < 64:
            continue
        raw = tensor.contiguous().numpy().tobytes()
        at = data.find(raw)
        if at >= 0 and data.find(raw, at + 1) < 0:  # these bytes are this tensor's alone
            data[at + 4 * 7 + 3] ^= 0x40
            path.write_bytes(bytes(data))
            return name
    raise AssertionError(f"no {weights} tensor found in the file")


def test_a_flipped_bit_in_an_ema_weight_is_one_sentence_naming_the_checkpoint(run, tmp_path, cli):
    copy = _copy(run, tmp_path)
    checkpoint = latest_checkpoint(copy)
    _flip_a_bit_of_an_ema_weight(checkpoint)
    mask = tmp_path / "mask.png"
    save_png(mask, np.zeros((64, 64), dtype=np.uint8))
    proc = cli("synth", str(mask), "--run", str(copy), "--out", str(tmp_path / "out.png"), check=False)
    _one_sentence(proc, str(checkpoint), "checksum")
    assert not (tmp_path / "out.png").exists()


def test_a_flipped_bit_in_a_segmenter_checkpoint_is_one_sentence(tmp_path):
    from spadekit.data.manifest import DatasetFacts
    from spadekit.segmenter import build_segmenter

    facts = DatasetFacts(name="x", class_names=["a", "b"], palette=[(0, 0, 0), (1, 1, 1)])
    options = {"arch": "unet", "encoder": "resnet18", "input_size": 64}
    build_segmenter("smp", options=options, facts=facts).save(tmp_path / "segmenter.pt")
    _flip_a_bit_of_an_ema_weight(tmp_path / "segmenter.pt", weights="state_dict")
    with pytest.raises(SpadekitError, match=r"Segmenter checkpoint .*segmenter\.pt is damaged: .*checksum"):
        build_segmenter("smp", tmp_path / "segmenter.pt")


def test_a_checkpoint_written_before_checksums_still_loads(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"step": 3, "generator": {"w": torch.ones(2)}}, path)  # what spadekit wrote before checksums
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["generator"]["w"], torch.ones(2))


# ------------------------------------------------------------------ 4. temp files of a killed write

def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _plant_temps(run_dir: Path) -> tuple[list[Path], list[Path]]:
    """Temp files of a checkpoint write killed with -9 (stale), and files that only look alike (kept)."""
    folder, dead, alive = run_dir / "checkpoints", _dead_pid(), os.getppid()
    folder.mkdir(parents=True, exist_ok=True)
    stale = [folder / f".step_00000004.pt.tmp{dead}", folder / f".latest.txt.tmp{dead}"]
    kept = [folder / f".step_00000004.pt.tmp{alive}",  # a live process may be writing it
            folder / "notes.tmp7", folder / ".step_00000004.pt.tmpx",  # not our pattern
            run_dir / f".step_00000004.pt.tmp{dead}"]  # not in checkpoints/
    for path in stale + kept:
        path.write_bytes(b"\0" * 4096)
    return stale, kept


def test_resume_removes_the_temp_files_of_a_killed_checkpoint_write_and_nothing_else(run, toy_shards, tmp_path):
    copy = _copy(run, tmp_path)
    stale, kept = _plant_temps(copy)
    train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 3}), copy, resume=True))
    assert [p.name for p in stale if p.exists()] == []
    assert all(p.exists() for p in kept)


def test_a_new_run_removes_the_temp_files_of_its_killed_first_checkpoint(toy_shards, tmp_path):
    fresh = tmp_path / "fresh"
    stale, kept = _plant_temps(fresh)
    train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 1}), fresh))
    assert [p.name for p in stale if p.exists()] == [] and all(p.exists() for p in kept)


# ------------------------------------------------------------------ 5. checkpoint write failures

def _limit_file_size() -> None:
    limit = 1 << 20  # samples, logs and config fit; the ~10 MB checkpoint does not: a disk that fills up
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_disk_that_fills_during_a_checkpoint_is_one_sentence_and_leaves_no_partial_file(toy_shards, tmp_path):
    recipe, run_dir = _write_recipe(tmp_path, toy_shards, **{"train.max_steps": 2}), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "spadekit.cli.main", "train", str(recipe), "--run-dir",
                           str(run_dir)], capture_output=True, text=True, env=env, preexec_fn=_limit_file_size)
    step = run_dir / "checkpoints" / "step_00000002.pt"
    _one_sentence(proc, str(step), "File too large")
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == []


def test_a_read_only_checkpoint_folder_is_one_sentence_and_leaves_no_partial_file(toy_shards, tmp_path,
                                                                                  monkeypatch):
    replace = os.replace

    def read_only(src, dst, *args, **kwargs):
        if Path(dst).parent.name == "checkpoints":
            raise PermissionError(errno.EACCES, "Permission denied", str(src), str(dst))
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", read_only)
    run_dir = tmp_path / "run"
    with pytest.raises(SpadekitError, match="step_00000002.pt.*Permission denied") as caught:
        train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 2}), run_dir))
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == []


def test_a_failed_save_of_any_checkpoint_names_the_file(tmp_path, monkeypatch):
    def full(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    path = tmp_path / "c.pt"
    with pytest.raises(SpadekitError, match=f"{path}.*No space left on device"):
        save_checkpoint(path, {"step": 1})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 6. process counts and the cores

@pytest.fixture()
def two_cores_no_gpu(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _cli(*args: str, capsys) -> tuple[int, str, str]:
    try:
        cli_main.run(list(args))
        code = 0
    except SystemExit as done:
        code = done.code
    out = capsys.readouterr()
    return code, " ".join(out.out.split()), " ".join(out.err.split())


def test_more_cpu_processes_than_cores_warns_on_stderr(two_cores_no_gpu, toy_shards, tmp_path, capsys):
    recipe = _write_recipe(tmp_path, toy_shards)
    code, out, err = _cli("train", str(recipe), "--gpus", "3", "--dry-run", capsys=capsys)
    assert code == 0 and "warning:" in err and "3 CPU processes" in err and "2 CPU cores" in err
    assert err.count("warning:") == 1


def test_an_absurd_number_of_cpu_processes_is_refused(two_cores_no_gpu, toy_shards, tmp_path, capsys):
    recipe = _write_recipe(tmp_path, toy_shards)
    code, out, err = _cli("train", str(recipe), "--gpus", "9", "--run-dir", str(tmp_path / "run"), capsys=capsys)
    assert code == 1 and err.count("error:") == 1 and "--gpus 9" in err and "2 CPU cores" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SpadekitError, match="--gpus 9"):
        distributed.launch(lambda env, arg: None, None, gpus=9)


def test_as_many_cpu_processes_as_cores_says_nothing(two_cores_no_gpu, toy_shards, tmp_path, capsys):
    recipe = _write_recipe(tmp_path, toy_shards)
    code, out, err = _cli("train", str(recipe), "--gpus", "2", "--dry-run", capsys=capsys)
    assert code == 0 and "warning" not in err
