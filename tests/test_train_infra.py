"""The trainer's support modules: checkpoints, RNG states, EMA, lr schedule, distributed launch, run logging."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn

from spadekit import checkpoints as ckpt
from spadekit.errors import SpadekitError
from spadekit.images import GAP
from spadekit.train import rng
from spadekit.train.distributed import DistEnv, all_reduce_mean, broadcast_object, launch, plan_description
from spadekit.train.ema import EMA
from spadekit.train.logger import RunLogger
from spadekit.train.schedule import lr_factor, make_schedulers

# ---------------------------------------------------------------- checkpoints


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_checkpoint_round_trip_loads_nested_state_under_weights_only(tmp_path):
    model = nn.Linear(3, 2)
    state = {
        "step": 7,
        "lr": 1e-4,
        "plugin": {"name": "spade", "version": "0.1"},
        "model": model.state_dict(),
        "shapes": [(1, 2), None],
        "rng": rng.rng_states(),
    }
    path = tmp_path / "run" / "c.pt"
    ckpt.save_checkpoint(path, state)
    loaded = ckpt.load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["lr"] == 1e-4 and loaded["plugin"] == state["plugin"]
    assert loaded["shapes"] == [(1, 2), None]
    assert all(torch.equal(loaded["model"][k], v) for k, v in state["model"].items())
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    assert _leftovers(path.parent) == []


def test_crash_during_save_keeps_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    ckpt.save_checkpoint(path, {"step": 1})

    def half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, {"step": 2})
    assert ckpt.load_checkpoint(path) == {"step": 1}
    assert _leftovers(tmp_path) == []


def test_missing_checkpoint_is_a_user_error_naming_the_file(tmp_path):
    with pytest.raises(SpadekitError, match=r"nope\.pt does not exist"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_checkpoint_is_a_user_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(SpadekitError, match=r"bad\.pt cannot be read"):
        ckpt.load_checkpoint(path)


def test_checkpoint_that_is_not_a_dict_is_a_user_error(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2], path)
    with pytest.raises(SpadekitError, match=r"list\.pt holds a list"):
        ckpt.load_checkpoint(path)


def test_latest_names_the_newest_step_checkpoint(tmp_path):
    assert ckpt.latest_checkpoint(tmp_path) is None
    for step in (100, 200):
        ckpt.save_step_checkpoint(tmp_path, step, {"step": step})
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest == tmp_path / "checkpoints" / "step_00000200.pt"
    assert (tmp_path / "checkpoints" / "latest.txt").read_text().strip() == "step_00000200.pt"


def test_latest_falls_back_to_highest_step_when_named_file_is_gone(tmp_path):
    for step in (5, 40, 300):
        ckpt.save_step_checkpoint(tmp_path, step, {"step": step})
    ckpt.checkpoint_path(tmp_path, 300).unlink()
    (tmp_path / "checkpoints" / ".step_00000400.pt.tmp123").write_bytes(b"half")
    assert ckpt.latest_checkpoint(tmp_path) == ckpt.checkpoint_path(tmp_path, 40)


def test_prune_keeps_the_newest_and_the_latest(tmp_path):
    for step in (1, 2, 3, 4, 5):
        ckpt.save_step_checkpoint(tmp_path, step, {"step": step})
    ckpt.prune_checkpoints(tmp_path, keep=2)
    remaining = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*.pt"))
    assert remaining == ["step_00000004.pt", "step_00000005.pt"]
    (tmp_path / "checkpoints" / "latest.txt").write_text("step_00000004.pt\n")
    ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, 6), {"step": 6})
    ckpt.prune_checkpoints(tmp_path, keep=1)
    remaining = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*.pt"))
    assert remaining == ["step_00000004.pt", "step_00000006.pt"]


# ---------------------------------------------------------------- RNG states


def _draws() -> tuple:
    return random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(), torch.rand(4).tolist()


def test_restored_rng_states_repeat_the_same_draws(tmp_path):
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    np.random.randn()
    ckpt.save_checkpoint(tmp_path / "rng.pt", {"rng": rng.rng_states()})
    first = _draws()
    rng.restore_rng_states(ckpt.load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert _draws() == first


# ---------------------------------------------------------------- EMA


def _conv_bn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_ema_update_is_decay_times_old_plus_rest_times_new():
    model = _conv_bn()
    ema = EMA(model)
    old = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model(torch.randn(2, 3, 8, 8))  # moves the running stats and counts a batch
    ema.update(model, decay=0.9)
    new = model.state_dict()
    for name, value in ema.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.9 * old[name] + 0.1 * new[name])
    assert ema.state_dict()["1.num_batches_tracked"].item() == 1


def test_ema_copy_is_frozen_and_in_eval_mode():
    ema = EMA(_conv_bn().train())
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())


def test_ema_follows_a_spectral_norm_conv_and_a_ddp_style_wrapper():
    torch.manual_seed(0)
    conv = nn.utils.parametrizations.spectral_norm(nn.Conv2d(2, 3, 3))
    ema = EMA(conv)
    with torch.no_grad():
        conv.parametrizations.weight.original.add_(1.0)
    before = ema.module.parametrizations.weight.original.clone()
    ema.update(conv, decay=0.5)
    torch.testing.assert_close(
        ema.module.parametrizations.weight.original, 0.5 * before + 0.5 * conv.parametrizations.weight.original
    )


def test_ema_of_a_spectral_norm_layer_keeps_its_spectral_norm_at_one():
    """Averaged u and v are shorter than one; left so, eval-mode sigma is too small and outputs blow up."""
    torch.manual_seed(0)
    conv = nn.utils.parametrizations.spectral_norm(nn.Conv2d(4, 8, 3)).train()
    ema = EMA(conv)
    for _ in range(30):
        with torch.no_grad():
            conv.parametrizations.weight.original.add_(0.3 * torch.randn(8, 4, 3, 3))  # the weights drift
        conv(torch.zeros(1, 4, 5, 5))  # training-mode power iteration on the model
        ema.update(conv, decay=0.9)
    effective = ema.module.weight.flatten(1)  # eval mode: W / (u^T W v) with the stored u, v
    assert torch.linalg.matrix_norm(effective, ord=2).item() == pytest.approx(1.0, abs=0.01)  # 1.49 if left


def test_ema_state_dict_round_trip(tmp_path):
    ema = EMA(_conv_bn())
    model = _conv_bn()
    with torch.no_grad():
        model[0].weight.mul_(3)
    ema.update(model, decay=0.0)
    ckpt.save_checkpoint(tmp_path / "ema.pt", {"ema": ema.state_dict()})
    other = EMA(_conv_bn())
    other.load_state_dict(ckpt.load_checkpoint(tmp_path / "ema.pt")["ema"])
    torch.testing.assert_close(other.module[0].weight, model[0].weight)


class _NoisyConvBN(nn.Module):
    """A generator-shaped module: forward(semantics, z=None) draws its latent when none is given."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, semantics, z=None):
        return self.bn(self.conv(semantics + torch.randn_like(semantics)))


def test_recomputed_batch_stats_are_the_averaged_generators_own_and_leave_the_average_alone():
    model = _NoisyConvBN()
    ema = EMA(model)
    ema.update(model, decay=0.5)
    averaged = {k: v.clone() for k, v in ema.module.named_buffers()}
    torch.manual_seed(1)
    batches = [3.0 + torch.randn(2, 3, 8, 8) for _ in range(51)]  # far from the stats the average holds (0, 1)
    torch.manual_seed(2)
    ema.recompute_batch_stats(batches, "fp32", torch.device("cpu"))
    assert not ema.module.training and ema.module.bn.num_batches_tracked.item() == 51
    # the running mean is now the mean of the EMA conv's own outputs over the batches, up to 0.9^51 of the start
    with torch.no_grad():
        torch.manual_seed(2)
        outputs = torch.cat([ema.module.conv(b + torch.randn_like(b)) for b in batches])
    expected = outputs.mean((0, 2, 3))
    assert (ema.module.bn.running_mean - averaged["bn.running_mean"]).abs().min() > 0.1  # it moved
    torch.testing.assert_close(ema.module.bn.running_mean, expected, atol=0.05, rtol=0.02)
    assert ema.averaged_buffers() is not None
    # the next update averages from the averages, as if the pass had not happened
    ema.update(model, decay=0.5)
    assert ema.averaged_buffers() is None
    for name, value in ema.module.named_buffers():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.5 * averaged[name] + 0.5 * dict(model.named_buffers())[name])


def test_recomputed_batch_stats_survive_a_checkpoint_with_their_averages(tmp_path):
    model = _NoisyConvBN()
    ema = EMA(model)
    ema.recompute_batch_stats([torch.randn(2, 3, 8, 8) + 1], "fp32", torch.device("cpu"))
    ckpt.save_checkpoint(tmp_path / "ema.pt", {"ema": ema.state_dict(), "averages": ema.averaged_buffers()})
    state = ckpt.load_checkpoint(tmp_path / "ema.pt")
    other = EMA(_NoisyConvBN())
    other.load_state_dict(state["ema"], state["averages"])
    torch.testing.assert_close(other.module.bn.running_mean, ema.module.bn.running_mean)
    ema.update(model, decay=0.9)
    other.update(model, decay=0.9)
    for (name, a), b in zip(ema.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# ---------------------------------------------------------------- schedule


def _official_lrs(lr0: float, epochs: int, decay_epochs: int) -> list[float]:
    """The official update rule: after epoch k > niter, lr -= lr0 / niter_decay."""
    niter, lr, used = epochs - decay_epochs, lr0, []
    for k in range(1, epochs + 1):
        used.append(lr)
        if k > niter:
            lr -= lr0 / decay_epochs
    return used


@pytest.mark.parametrize(("epochs", "decay_epochs"), [(10, 5), (50, 0)])
def test_schedule_matches_the_official_rule(epochs, decay_epochs):
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=2e-4)
    (scheduler,) = make_schedulers([optimizer], epochs, decay_epochs)
    used = []
    for epoch in range(epochs):
        used.append(optimizer.param_groups[0]["lr"])
        assert lr_factor(epoch, epochs, decay_epochs) * 2e-4 == pytest.approx(used[-1])
        optimizer.step()
        scheduler.step()
    assert used == pytest.approx(_official_lrs(2e-4, epochs, decay_epochs))


def test_scheduler_resumed_from_state_dict_continues_identically(tmp_path):
    def run(epochs_done, state=None):
        optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
        (scheduler,) = make_schedulers([optimizer], 10, 5)
        if state is not None:
            scheduler.load_state_dict(state)
        for _ in range(epochs_done):
            optimizer.step()
            scheduler.step()
        return scheduler, optimizer

    full, full_opt = run(8)
    half, _ = run(4)
    ckpt.save_checkpoint(tmp_path / "s.pt", {"scheduler": half.state_dict()})
    resumed, resumed_opt = run(4, ckpt.load_checkpoint(tmp_path / "s.pt")["scheduler"])
    assert resumed.last_epoch == full.last_epoch == 8
    assert resumed.get_last_lr() == pytest.approx(full.get_last_lr())


# ---------------------------------------------------------------- distributed


def sum_ranks_worker(env: DistEnv, out_dir: str) -> None:
    total = torch.tensor([float(env.rank + 1)])
    dist.all_reduce(total)
    mean = all_reduce_mean({"loss": torch.tensor(float(env.rank))}, env)
    token = broadcast_object(f"from rank {env.rank}", env)
    result = {"sum": total.item(), "world": env.world_size, "mean": mean["loss"], "token": token}
    Path(out_dir, f"rank{env.rank}.json").write_text(json.dumps(result))


def failing_worker(env: DistEnv, arg: None) -> None:
    if env.rank == 1:
        raise SpadekitError("Recipe x.toml names no dataset: set data.shards.")
    dist.barrier()


def crashing_worker(env: DistEnv, arg: None) -> None:
    if env.rank == 1:
        raise ValueError("boom in the worker")
    dist.barrier()


def test_launch_two_cpu_processes_all_reduce_over_gloo(tmp_path):
    launch(sum_ranks_worker, str(tmp_path), gpus=2)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r == {"sum": 3.0, "world": 2, "mean": 0.5, "token": "from rank 0"} for r in results)


def test_user_error_in_a_worker_reaches_the_parent_as_that_error():
    with pytest.raises(SpadekitError) as caught:
        launch(failing_worker, None, gpus=2)
    assert str(caught.value) == "Recipe x.toml names no dataset: set data.shards."


def test_other_worker_failure_names_rank_and_traceback():
    with pytest.raises(RuntimeError, match=r"(?s)rank 1 failed.*ValueError: boom in the worker"):
        launch(crashing_worker, None, gpus=2)


def test_single_gpu_request_runs_in_this_process_without_a_group():
    seen = []
    launch(lambda env, arg: seen.append((os.getpid(), dist.is_initialized(), env, arg)), "x", gpus=1)
    pid, grouped, env, arg = seen[0]
    assert (pid, grouped, arg) == (os.getpid(), False, "x")
    assert env.is_main and not env.distributed and env.backend is None


def test_torchrun_environment_joins_its_group(monkeypatch):
    from spadekit.train.distributed import _free_port

    port = _free_port("127.0.0.1")
    for name, value in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", str(port))
    seen = []
    launch(lambda env, arg: seen.append((dist.is_initialized(), env.backend, env.world_size)), None, gpus=4)
    assert seen == [(True, "gloo", 1)]
    assert not dist.is_initialized()


def test_multi_node_without_master_port_is_a_user_error():
    with pytest.raises(SpadekitError, match="--master-port"):
        launch(sum_ranks_worker, "unused", gpus=1, nnodes=2)


def test_plan_description_says_cpu_processes_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert plan_description(2) == "2 CPU processes (gloo): no CUDA device found"
    assert plan_description(1) == "1 process on cpu: no CUDA device found"


def test_all_reduce_mean_outside_a_group_returns_floats():
    assert all_reduce_mean({"g": torch.tensor(2.5), "d": torch.tensor([1.0])}, DistEnv()) == {"g": 2.5, "d": 1.0}


# ---------------------------------------------------------------- logger


def test_metrics_lines_parse_and_truncate_drops_later_steps(tmp_path):
    logger = RunLogger(tmp_path, enabled=True)
    for step in (10, 20, 30):
        logger.log(step, {"loss_g": step / 10, "loss_d": torch.tensor(1.0)})
    logger.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[1] == {"step": 20, "loss_g": 2.0, "loss_d": 1.0}
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "loss')  # a line torn by a crash
    resumed = RunLogger(tmp_path, enabled=True, resume_step=20)
    resumed.log(30, {"loss_g": 9.0})
    resumed.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(entry["step"], entry["loss_g"]) for entry in lines] == [(10, 1.0), (20, 2.0), (30, 9.0)]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_samples_png_has_one_row_per_sample_and_three_panels(tmp_path):
    n, h, w = 10, 6, 5
    label = torch.full((n, 3, h, w), 7, dtype=torch.uint8)
    fake = -torch.ones(n, 3, h, w)
    real = torch.ones(n, 3, h, w) * 0.0
    logger = RunLogger(tmp_path, enabled=True)
    path = logger.save_samples(3, label, fake, real)
    logger.close()
    assert path == tmp_path / "samples" / "step_00000003.png"
    pixels = np.asarray(Image.open(path))
    assert pixels.shape == (8 * h + 7 * GAP, 3 * w + 2 * GAP, 3)
    corners = [pixels[0, 0].tolist(), pixels[0, w + GAP].tolist(), pixels[0, 2 * (w + GAP)].tolist()]
    assert corners == [[7, 7, 7], [0, 0, 0], [128, 128, 128]]
    assert (pixels[h, 0] == 255).all() and (pixels[0, w] == 255).all()


def test_disabled_logger_writes_nothing(tmp_path):
    logger = RunLogger(tmp_path / "run", enabled=False)
    logger.log(1, {"loss": 1.0})
    image = torch.zeros(1, 3, 4, 4)
    assert logger.save_samples(1, image.to(torch.uint8), image, image) is None
    logger.truncate_after(0)
    logger.close()
    assert not (tmp_path / "run").exists()
