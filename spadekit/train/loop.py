"""The training loop: set up, resume, then alternate one generator and one discriminator step (no
discriminator step when the loss is regression only, `loss.lambda_gan = 0`).

`train()` checks the run directory and launches `run_worker` on every process (see
`spadekit.train.distributed`); `run_worker` reads top to bottom: data, networks, optimizers, resume, the
run directory's files (written only now, when nothing can refuse the run any more), the loop, the final
checkpoint.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from spadekit import __version__, registry
from spadekit.checkpoints import (
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_step_checkpoint,
)
from spadekit.config import Recipe
from spadekit.console import console, progress_bar
from spadekit.data.palette import colour_lut
from spadekit.device import autocast, check_precision
from spadekit.errors import SpadekitError
from spadekit.method import ema_stat_batches
from spadekit.nn.semantics import to_semantics
from spadekit.run_info import DISCRIMINATOR, GENERATOR, RunInfo, load_state
from spadekit.run_info import EMA as EMA_KEY
from spadekit.train import build
from spadekit.train.distributed import DistEnv, all_reduce_mean, barrier, launch
from spadekit.train.ema import EMA
from spadekit.train.finite_guard import FiniteGuard
from spadekit.train.logger import RunLogger
from spadekit.train.objective import GeneratorStep
from spadekit.train.rng import restore_rng_states, rng_states
from spadekit.train.run_setup import check_run_dir, write_run_dir
from spadekit.train.schedule import make_schedulers

# the EMA's averaged buffers while the saved EMA generator carries recomputed batch statistics (`EMA.averaged_buffers`)
EMA_AVERAGES = "ema_averaged_buffers"


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker process needs (picklable: it travels to spawned processes)."""

    recipe: Recipe
    run_dir: Path
    resume: bool = False
    run_info: RunInfo | None = None  # set by train() on the node that writes the run directory


@dataclass
class Counters:
    step: int = 0  # optimizer steps done (one G and one D update each)
    epoch: int = 0  # the epoch in progress
    epoch_step: int = 0  # steps done within that epoch


def train(job: TrainJob, gpus: int = 1, nnodes: int = 1, node_rank: int = 0, master_addr: str = "127.0.0.1",
          master_port: int | None = None) -> None:
    if node_rank == 0:
        job = replace(job, run_info=check_run_dir(job.recipe, job.run_dir, job.resume))
    launch(run_worker, job, gpus, nnodes, node_rank, master_addr, master_port)


def run_worker(env: DistEnv, job: TrainJob) -> None:
    recipe, t = job.recipe, job.recipe.train
    check_precision(t.precision, env.device)
    loader = build.train_loader(recipe, env)
    facts = loader.dataset.reader.facts
    context = build.generator_context(recipe, facts)
    nets = build.build_networks(recipe, context, env)
    ema = EMA(nets.generator) if t.ema_decay > 0 else None
    stat_batches = ema_stat_batches(nets.method) if ema is not None else 0
    stat_loader = build.train_loader(recipe, env, num_workers=0) if stat_batches else None
    opt_G = build.adam(nets.generator.parameters(), recipe.optim.lr_G, recipe)
    opt_D = build.adam(nets.discriminator.parameters(), recipe.optim.lr_D, recipe)
    schedulers = make_schedulers([opt_G, opt_D], t.epochs, t.decay_epochs)
    scalers = [torch.amp.GradScaler("cuda", enabled=t.precision == "fp16") for _ in range(2)]
    g_step, discriminator = GeneratorStep(nets.generator), nets.discriminator
    if env.distributed:
        ids = [env.device.index] if env.device.type == "cuda" else None
        g_step = DistributedDataParallel(g_step, device_ids=ids)
        discriminator = DistributedDataParallel(discriminator, device_ids=ids)
    objective = nets.method.objective(g_step, discriminator, nets.vgg)
    parts = _Parts(nets.generator, nets.discriminator, ema, opt_G, opt_D, schedulers, scalers)

    counters = Counters()
    if job.resume:
        counters = _resume(parts, job.run_dir, env)
    else:
        if t.init_from is not None:
            _init_from(parts, Path(t.init_from))
        torch.manual_seed(t.seed * 1000 + env.rank)  # different latents and noise on each rank
    total = min(t.epochs * loader.batches_per_epoch, t.max_steps or float("inf"))
    samples = build.sample_batch(recipe, env.device) if env.is_main else None
    barrier(env)  # every rank is set up: a rank that failed stops the others before anything is written
    if env.is_main and job.run_info is not None:
        _write_run_dir(job)
    logger = RunLogger(job.run_dir, env.is_main, resume_step=counters.step if job.resume else None)
    meter, guard = _Meter(), FiniteGuard()
    deadline = time.monotonic() + 60 * t.max_minutes if t.max_minutes else None
    compiling, started = t.compile, time.perf_counter()  # train.compile: the first step's time is reported
    with _Progress(env.is_main, total, counters.step, recipe.data.batch_size) as progress:
        while counters.step < total:
            loader.set_epoch(counters.epoch, skip_batches=counters.epoch_step)
            for batch in loader:
                # the loader checked every label id (ShardDataset): no range check waiting for the device
                semantics = to_semantics(batch["label"], batch["edge"], context.space, validate=False)
                semantics, real = (build.to_layout(x, t.channels_last) for x in (semantics, batch["image"]))
                with autocast(t.precision, env.device):
                    losses_G, _ = objective.generator_losses(semantics, real)
                _update(opt_G, scalers[0], losses_G)
                losses_D = {}
                if objective.trains_discriminator:  # not with loss.lambda_gan = 0 (regression only)
                    with autocast(t.precision, env.device):
                        losses_D = objective.discriminator_losses(semantics, real)
                    _update(opt_D, scalers[1], losses_D)
                guard.watch({**losses_G, **losses_D}, counters.step + 1)
                if ema is not None:
                    ema.update(nets.generator, t.ema_decay)
                counters.step += 1
                counters.epoch_step += 1
                meter.add({**losses_G, **losses_D}, real.shape[0] * env.world_size)
                progress.advance()
                if compiling:
                    compiling = _report_compile_time(started, env)
                if deadline is not None and _time_is_up(deadline, env):
                    total = counters.step  # train.max_minutes: log, sample and save as at the last step
                log_now = counters.step % t.log_every == 0 or counters.step == total
                sample_now = counters.step % t.sample_every == 0 or counters.step == total
                save_now = counters.step % t.checkpoint_every == 0 or counters.step == total
                if log_now or sample_now or save_now:
                    guard.check(job.run_dir, env)  # before anything is written
                if log_now:
                    means = meter.flush(env)
                    logger.log(counters.step, {**means, **_lrs(opt_G, opt_D), "epoch": counters.epoch})
                    progress.describe(means)
                if stat_loader is not None and (sample_now or save_now):
                    _recompute_ema_stats(ema, stat_loader, stat_batches, counters.step, context, t, env)
                if sample_now:
                    _save_samples(logger, counters.step, parts, samples, context, facts, t.precision, env)
                if save_now:
                    _checkpoint(parts, counters, job, env)
                if counters.step >= total:
                    break
            else:
                counters.epoch, counters.epoch_step = counters.epoch + 1, 0
                # D's schedule moves only when D trains (with lambda_gan = 0 its optimizer never steps)
                for scheduler in schedulers if objective.trains_discriminator else schedulers[:1]:
                    scheduler.step()
    logger.close()
    if env.is_main:
        console.print(f"[green]done:[/] {counters.step} steps; sample grids in {job.run_dir / 'samples'}, "
                      f"metrics in {job.run_dir / 'metrics.jsonl'}", highlight=False)


@dataclass
class _Parts:
    """What a checkpoint saves and restores."""

    generator: nn.Module
    discriminator: nn.Module
    ema: EMA | None
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    schedulers: list
    scalers: list


def _update(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, losses: dict[str, Tensor]) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(sum(losses.values())).backward()
    scaler.step(optimizer)
    scaler.update()


def _recompute_ema_stats(ema: EMA, loader, count: int, step: int, context, t, env: DistEnv) -> None:
    """The method's `ema_stat_batches` pass (`spadekit.method`), its latents drawn from a generator seeded by the
    step, so that the training stream, and with it an exact resume, stays as it was."""
    with _forked_rng(env, seed=t.seed * 1000 + env.rank + step):
        ema.recompute_batch_stats(build.ema_stat_semantics(loader, step, count, context), t.precision, env.device)


@contextmanager
def _forked_rng(env: DistEnv, seed: int):
    """Draws inside come from `seed`; the global random state is as before when the block ends."""
    with torch.random.fork_rng([env.device] if env.device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _report_compile_time(started: float, env: DistEnv) -> bool:
    """After the first step with train.compile: how long it took, compiling included (one wait for the device)."""
    if env.device.type == "cuda":
        torch.cuda.synchronize(env.device)
    if env.is_main:
        console.print(f"first step, with torch.compile compiling the networks: {time.perf_counter() - started:.1f} s",
                      highlight=False)
    return False


def _time_is_up(deadline: float, env: DistEnv) -> bool:
    """Whether train.max_minutes have passed, as rank 0 sees it, so that every rank stops at the same step."""
    if not env.distributed:
        return time.monotonic() >= deadline  # no device tensor: nothing to wait for
    up = torch.tensor([float(time.monotonic() >= deadline)], device=env.device)
    dist.broadcast(up, src=0)
    return bool(up.item())


def _lrs(opt_G, opt_D) -> dict[str, float]:
    return {"lr_G": opt_G.param_groups[0]["lr"], "lr_D": opt_D.param_groups[0]["lr"]}


def _state(parts: _Parts, counters: Counters, job: TrainJob, rng: list) -> dict:
    return {
        "step": counters.step, "epoch": counters.epoch, "epoch_step": counters.epoch_step,
        GENERATOR: parts.generator.state_dict(),
        DISCRIMINATOR: parts.discriminator.state_dict(),
        EMA_KEY: parts.ema.state_dict() if parts.ema is not None else None,
        EMA_AVERAGES: parts.ema.averaged_buffers() if parts.ema is not None else None,
        "opt_G": parts.opt_G.state_dict(), "opt_D": parts.opt_D.state_dict(),
        "schedulers": [s.state_dict() for s in parts.schedulers],
        "scalers": [s.state_dict() for s in parts.scalers],
        "rng": rng,  # one entry per rank
        "config": job.recipe.resolved_toml(),
        "plugin": {"name": job.recipe.model.name, "version": _plugin_version(job.recipe.model.name)},
        "spadekit_version": __version__,
    }


def _write_run_dir(job: TrainJob) -> None:
    removed = write_run_dir(job.recipe, job.run_dir, job.run_info)
    if removed:
        console.print(f"removed {len(removed)} temp file(s) of a checkpoint write that was killed: "
                      f"{', '.join(p.name for p in removed)}", highlight=False)


def _plugin_version(name: str) -> str:
    return registry.entries("generators")[name].version


def _checkpoint(parts: _Parts, counters: Counters, job: TrainJob, env: DistEnv) -> None:
    rng = [None] * env.world_size
    if env.distributed:
        dist.all_gather_object(rng, rng_states())
    else:
        rng = [rng_states()]
    if env.is_main:
        save_step_checkpoint(job.run_dir, counters.step, _state(parts, counters, job, rng))
        prune_checkpoints(job.run_dir, job.recipe.train.keep_checkpoints)
    barrier(env)


def _resume(parts: _Parts, run_dir: Path, env: DistEnv) -> Counters:
    path = latest_checkpoint(run_dir)
    state = load_checkpoint(path)
    load_state(parts.generator, state[GENERATOR], f"{path} [{GENERATOR}]")
    load_state(parts.discriminator, state[DISCRIMINATOR], f"{path} [{DISCRIMINATOR}]")
    if parts.ema is not None and state.get(EMA_KEY) is not None:
        parts.ema.load_state_dict(state[EMA_KEY], state.get(EMA_AVERAGES))
    if "opt_G" in state:  # absent in weights-only (imported) checkpoints
        parts.opt_G.load_state_dict(state["opt_G"])
        parts.opt_D.load_state_dict(state["opt_D"])
        for obj, saved in zip(parts.schedulers + parts.scalers, state["schedulers"] + state["scalers"], strict=True):
            obj.load_state_dict(saved)
    rng = state.get("rng") or []
    if len(rng) == env.world_size:
        restore_rng_states(rng[env.rank])
    return Counters(state.get("step", 0), state.get("epoch", 0), state.get("epoch_step", 0))


def _init_from(parts: _Parts, source: Path) -> None:
    """Fine-tuning: the weights of another run's latest checkpoint; optimizers and counters start fresh."""
    path = latest_checkpoint(source)
    if path is None:
        raise SpadekitError(f"train.init_from = {source} has no checkpoint; give a run directory that has one.")
    state = load_checkpoint(path)
    load_state(parts.generator, state[GENERATOR], f"{path} [{GENERATOR}]")
    if state.get(DISCRIMINATOR) is not None:
        load_state(parts.discriminator, state[DISCRIMINATOR], f"{path} [{DISCRIMINATOR}]")
    if parts.ema is not None:
        parts.ema.load_state_dict(state.get(EMA_KEY) or state[GENERATOR])


@torch.no_grad()
def _save_samples(logger, step, parts, samples, context, facts, precision, env) -> None:
    if not env.is_main:
        return
    generator = parts.ema.module if parts.ema is not None else parts.generator
    was_training = generator.training
    generator.eval()
    semantics = to_semantics(samples["label"], samples["edge"], context.space)
    z = generator.encoder(samples["image"])[0] if generator.encoder is not None else None  # the style's mean
    # a generator that draws its own latent (OASIS's noise) draws the same one for every grid, from a generator
    # of its own: the grids compare steps, and the training stream (an exact resume) stays as it was
    with _forked_rng(env, seed=0), autocast(precision, env.device):
        fake = generator(semantics, z)
    generator.train(was_training)
    labels = samples["label"][:, 0].clamp(max=len(facts.class_names)).cpu().numpy()
    label_rgb = torch.from_numpy(colour_lut(facts)[labels]).permute(0, 3, 1, 2)
    logger.save_samples(step, label_rgb, fake, samples["image"])


class _Meter:
    """Running sums of the losses between log lines, and the images/s rate."""

    def __init__(self):
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0
        self.images = 0
        self.start = time.perf_counter()

    def add(self, losses: dict[str, Tensor], images: int) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0) + value.detach().float()
        self.count += 1
        self.images += images

    def flush(self, env: DistEnv) -> dict[str, float]:
        means = all_reduce_mean({k: v / self.count for k, v in self.sums.items()}, env)
        means["images_per_s"] = self.images / max(time.perf_counter() - self.start, 1e-9)
        self._reset()
        return means


class _Progress:
    """A rich progress bar on the main rank: images done, images/s, ETA, the step and its losses."""

    def __init__(self, enabled: bool, total_steps: int, done_steps: int, batch_size: int):
        self.enabled, self.total, self.batch = enabled, total_steps, batch_size
        self.step = done_steps
        self.text = ""
        self._bar = progress_bar("img") if enabled else None

    def __enter__(self):
        if self._bar is not None:
            self._bar.__enter__()
            self._task = self._bar.add_task("training", total=self.total * self.batch, completed=self.step * self.batch)
        return self

    def advance(self) -> None:
        self.step += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=self.batch, description=f"step {self.step}/{self.total}  {self.text}")

    def describe(self, means: dict[str, float]) -> None:
        """Show the losses of the last log line (read at log steps only: no wait for the device per step)."""
        self.text = " ".join(f"{k} {v:.3f}" for k, v in means.items() if k[0].isupper())

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
