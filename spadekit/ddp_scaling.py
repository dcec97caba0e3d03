"""Multi-GPU scaling of the training step on one node (`benchmarks/ddp_scaling.py`).

For each rank count N: N processes, each with its own GPU, run perf's training step (`spadekit.perf.training_step`,
the per-rank batch the recipe's global batch gives each of them) with G's step and D in DistributedDataParallel,
exactly as the trainer launches and wraps them (`spadekit.train.distributed.launch`); one rank runs without DDP, as
the trainer does. Images/s = N x batch / the median step seconds of rank 0 (DDP's all-reduce makes every rank's
step end together); efficiency = images/s at N ranks / (N x images/s at one rank). On a machine without GPUs the
ranks are CPU processes over gloo, sharing the cores: that checks the code, its figures say nothing of GPUs.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from spadekit.nn.semantics import LabelSpace
from spadekit.perf import COCO_SPACE, SIZE, timed, training_step
from spadekit.train.distributed import DistEnv, launch


@dataclass(frozen=True)
class ScalingRun:
    """One rank count's measurement (picklable: it travels to the spawned ranks)."""

    precision: str
    batch: int  # per rank
    out: str  # where rank 0 writes its median step seconds
    size: int = SIZE
    space: LabelSpace = COCO_SPACE
    repeats: int = 5
    warmup: int = 2
    channels_last: bool = False
    compile: bool = False


def scaling(ranks: list[int], precision: str, batch: int, size: int = SIZE, space: LabelSpace = COCO_SPACE,
            repeats: int = 5, warmup: int = 2, channels_last: bool = False, compile: bool = False) -> list[dict]:
    """One row per rank count: ranks, per-rank batch, step seconds, images/s and efficiency against linear (None
    without a one-rank row to compare with)."""
    rows: list[dict] = []
    for n in ranks:
        with tempfile.TemporaryDirectory(prefix="spadekit-scaling-") as scratch:
            run = ScalingRun(precision, batch, str(Path(scratch) / "seconds.json"), size, space, repeats, warmup,
                             channels_last, compile)
            launch(_measure_rank, run, gpus=n)
            seconds = json.loads(Path(run.out).read_text())
        rows.append({"ranks": n, "batch_per_rank": batch, "step_s": seconds, "images_per_s": n * batch / seconds})
    single = next((row["images_per_s"] for row in rows if row["ranks"] == 1), None)
    for row in rows:
        row["efficiency"] = row["images_per_s"] / (row["ranks"] * single) if single else None
    return rows


def _measure_rank(env: DistEnv, run: ScalingRun) -> None:
    step = training_step(run.precision, env.device, run.space, run.size, run.batch, channels_last=run.channels_last,
                         compile=run.compile, ddp=env.distributed)
    seconds = timed(step, run.repeats, run.warmup, env.device)
    if env.is_main:
        Path(run.out).write_text(json.dumps(seconds))


def describe_device() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"cpu ({torch.get_num_threads()} threads, shared by the ranks)"
