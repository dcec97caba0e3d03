"""The trainer end to end on tiny toyscapes shards: run directory, exact resume, two processes, NaN guard."""

from __future__ import annotations

import json
import os
import shutil
import traceback
from pathlib import Path

import pytest
import torch

from spadekit.checkpoints import latest_checkpoint, load_checkpoint
from spadekit.config import load_recipe
from spadekit.errors import SpadekitError
from spadekit.train import objective
from spadekit.train.loop import TrainJob, train
from tests.conftest import run_cli

# A SPADE small enough to train a step in well under a second: VAE mode, so the encoder, the KL term and
# the reparameterization's random numbers are all exercised.
TINY = {
    "data.load_size": 72, "data.crop_size": 64, "data.batch_size": 4, "data.num_workers": 0,
    "model.ngf": 4, "model.use_vae": True, "model.z_dim": 8, "model.hidden": 16,
    "discriminator.ndf": 8, "loss.lambda_vgg": 0.0,
    "train.epochs": 4, "train.decay_epochs": 2, "train.log_every": 1, "train.sample_every": 2,
    "train.checkpoint_every": 2, "train.ema_decay": 0.9,
}


def _recipe(shards: Path, **overrides):
    return load_recipe(None, {**TINY, "data.shards": str(shards), **overrides})


def _write_recipe(tmp_path: Path, shards: Path, **overrides) -> Path:
    lines = ["[data]", f'shards = "{shards}"']
    path = tmp_path / "tiny.toml"
    sets = {**TINY, **overrides}
    sections: dict[str, list[str]] = {}
    for key, value in sets.items():
        section, name = key.split(".")
        sections.setdefault(section, []).append(f"{name} = {json.dumps(value)}")
    lines += sections.pop("data")
    for section, items in sections.items():
        lines += [f"[{section}]", *items]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_cli_writes_a_complete_run_directory(tmp_path, toy_shards, cli):
    recipe = _write_recipe(tmp_path, toy_shards, **{"train.max_steps": 3})
    run = tmp_path / "run"
    cli("train", str(recipe), "--run-dir", str(run))
    assert (run / "config.toml").is_file() and (run / "run.json").is_file()
    assert latest_checkpoint(run).name == "step_00000003.pt"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_00000002.png", "step_00000003.png"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3]
    assert {"G_GAN", "G_feat", "KLD", "D_fake", "D_real", "images_per_s", "lr_G", "lr_D"} <= set(lines[0])
    assert list((run / "tb").iterdir())
    state = load_checkpoint(latest_checkpoint(run))
    assert state["step"] == 3 and state["ema"] is not None and state["opt_G"]["state"]


def _final_state(run: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run))


def _assert_same(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


def test_resume_continues_bit_exact(tmp_path, toy_shards):
    # 24 samples / batch 4 = 6 steps per epoch: 8 steps cross an epoch boundary and a learning-rate change
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 8}), straight))
    train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 4}), interrupted))
    train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 8}), interrupted, resume=True))
    a, b = _final_state(straight), _final_state(interrupted)
    assert a["step"] == b["step"] == 8 and a["epoch"] == 1
    for key in ("generator", "discriminator", "ema", "opt_G", "opt_D", "schedulers", "rng"):
        _assert_same(a[key], b[key], key)
    steps = [json.loads(line)["step"] for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_the_finite_guard_names_the_first_bad_step_when_it_is_checked(tmp_path):
    from spadekit.train.distributed import DistEnv
    from spadekit.train.finite_guard import FiniteGuard

    guard, env = FiniteGuard(), DistEnv(device=torch.device("cpu"))
    guard.check(tmp_path, env)  # nothing watched yet
    guard.watch({"G_GAN": torch.tensor(0.5), "D_fake": torch.tensor(1.0)}, 1)
    guard.check(tmp_path, env)  # finite: no error
    guard.watch({"G_GAN": torch.tensor(float("nan")), "D_fake": torch.tensor(1.0)}, 2)
    guard.watch({"G_GAN": torch.tensor(float("inf")), "D_fake": torch.tensor(float("nan"))}, 3)
    with pytest.raises(SpadekitError, match=r"diverged at step 2 \(G_GAN=nan\); no checkpoint was written yet"):
        guard.check(tmp_path, env)


def test_steps_do_not_wait_for_the_device(tmp_path, toy_shards, monkeypatch):
    """Reading a tensor's value on the host (item, tolist, int, float, bool) waits for a GPU to finish; spadekit's
    step does it only when it logs, samples or saves: 6 steps read as often as 2. Reads by the host-side loader
    (spadekit.data) and by the optimizer (Adam keeps its step counters on the host) are not counted."""
    reads = []
    for name in ("item", "tolist", "__int__", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            stack = [f.filename for f in traceback.extract_stack()[:-1]]
            caller = next(f for f in reversed(stack) if f"{os.sep}torch{os.sep}" not in f)
            in_optimizer = any(f"torch{os.sep}optim" in f for f in stack)  # Adam's host-side step counters
            if not in_optimizer and any(part in caller for part in ("spadekit/train", "spadekit/nn", "plugins")):
                reads.append(caller)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    counts = []
    for steps in (2, 6):  # one epoch (24 samples, batch 4)
        reads.clear()
        every = {"train.log_every": 100, "train.sample_every": 100, "train.checkpoint_every": 100}
        train(TrainJob(_recipe(toy_shards, **{"train.max_steps": steps, **every}), tmp_path / f"run{steps}"))
        counts.append(len(reads))
    assert counts[0] == counts[1] > 0, counts


def test_two_processes_train_and_write_one_checkpoint(tmp_path, toy_shards):
    recipe = _write_recipe(tmp_path, toy_shards, **{"train.max_steps": 2})
    run = tmp_path / "ddp"
    # a real process: `spadekit train` end to end, and it starts two more (the other commands run in this process)
    result = run_cli("train", str(recipe), "--run-dir", str(run), "--gpus", "2")
    assert "2 CPU processes (gloo)" in result.stdout
    assert [p.name for p in (run / "checkpoints").glob("step_*.pt")] == ["step_00000002.pt"]
    assert len(_final_state(run)["rng"]) == 2  # each rank's random state, for an exact resume


def test_nan_loss_stops_before_saving_and_keeps_the_last_good_checkpoint(tmp_path, toy_shards, tiny_run,
                                                                         monkeypatch):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))  # this recipe, 2 steps
    monkeypatch.setattr(objective, "feature_matching_loss", lambda *args, **kwargs: torch.tensor(float("nan")))
    with pytest.raises(SpadekitError, match=r"diverged at step 3 \(G_feat=nan\).*step_00000002\.pt"):
        train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 4}), run, resume=True))
    assert latest_checkpoint(run).name == "step_00000002.pt"
    assert _final_state(run)["step"] == 2


def test_max_minutes_stops_with_samples_and_a_checkpoint_and_resumes(tmp_path, toy_shards):
    run = tmp_path / "run"
    train(TrainJob(_recipe(toy_shards, **{"train.max_minutes": 1e-6, "train.max_steps": 50}), run))
    assert _final_state(run)["step"] == 1  # the budget ran out during the first step
    assert latest_checkpoint(run).name == "step_00000001.pt" and list((run / "samples").glob("*1.png"))
    train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 3}), run, resume=True))  # a new budget is no change
    assert _final_state(run)["step"] == 3


def test_existing_run_needs_resume_and_resume_needs_the_same_recipe(tmp_path, toy_shards, tiny_run):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))  # a run of this recipe (2 steps)
    with pytest.raises(SpadekitError, match="already holds a run.*--resume"):
        train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 1}), run))
    with pytest.raises(SpadekitError, match=r"optim\.lr_G = 0\.001.*trained with 0\.0001"):
        train(TrainJob(_recipe(toy_shards, **{"optim.lr_G": 1e-3}), run, resume=True))
    with pytest.raises(SpadekitError, match="no checkpoint to resume"):
        train(TrainJob(_recipe(toy_shards), tmp_path / "empty", resume=True))
    # the speed options change the result by float rounding only: a run may continue with them switched
    train(TrainJob(_recipe(toy_shards, **{"train.max_steps": 3, "train.channels_last": True}), run, resume=True))
    assert _final_state(run)["step"] == 3


def test_user_errors_are_one_sentence(tmp_path, toy_shards, cli):
    # fp16 in a real process: a user error ends it with exit 1 and one sentence, no traceback
    fp16 = run_cli("train", str(_write_recipe(tmp_path, toy_shards, **{"train.precision": "fp16"})),
                   "--run-dir", str(tmp_path / "a"), check=False)
    assert fp16.returncode == 1 and "needs a CUDA GPU" in fp16.stderr and "Traceback" not in fp16.stderr
    vgg = cli("train", str(_write_recipe(tmp_path, toy_shards, **{"loss.lambda_vgg": 10.0})),
              "--run-dir", str(tmp_path / "b"), check=False, env={"TORCH_HOME": str(tmp_path / "hub")})
    assert vgg.returncode == 1 and "vgg19-dcbb9e9d.pth" in vgg.stderr and "lambda_vgg" in vgg.stderr


def test_dry_run_prints_the_config_and_network_sizes(tmp_path, toy_shards, cli):
    result = cli("train", str(_write_recipe(tmp_path, toy_shards)), "--dry-run")
    assert "[model]" in result.stdout and "input channels 10" in result.stdout
    assert "generator" in result.stdout and "discriminator" in result.stdout
    assert not (Path("runs") / "tiny").exists()
