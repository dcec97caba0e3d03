"""The trainer's NaN/inf guard: training stops, on every rank and before anything is written, at a loss that is
not finite, without reading a loss on the host at every step."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from spadekit.checkpoints import latest_checkpoint
from spadekit.errors import SpadekitError
from spadekit.train.distributed import DistEnv


class FiniteGuard:
    """Stops every rank, before anything is logged, sampled or saved, when a loss was NaN or infinite on any
    rank. `watch` records each step's verdict on the device (no wait for the step to finish); `check`, called
    before the loop writes anything, reads it and names the first bad step and its losses."""

    def __init__(self):
        self.first_bad: Tensor | None = None  # the first bad step (-1: none), on the device
        self.values: dict[str, Tensor] = {}  # each loss at that step (until then: as first seen)

    def watch(self, losses: dict[str, Tensor], step: int) -> None:
        values = {name: value.detach().float() for name, value in losses.items()}
        if self.first_bad is None:
            self.first_bad = torch.full((), -1, dtype=torch.int64, device=next(iter(values.values())).device)
        new = ~torch.stack(list(values.values())).isfinite().all() & (self.first_bad < 0)
        self.first_bad = torch.where(new, step, self.first_bad)
        for name, value in values.items():
            self.values[name] = torch.where(new, value, self.values.get(name, value))

    def check(self, run_dir: Path, env: DistEnv) -> None:
        if self.first_bad is None:
            return
        bad = (self.first_bad >= 0).float()
        if env.distributed:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if bad.item() == 0:
            return
        step = int(self.first_bad.item())
        values = {name: value.item() for name, value in self.values.items()}
        losses = ", ".join(f"{k}={v:.4g}" for k, v in values.items() if not math.isfinite(v))
        last = latest_checkpoint(run_dir)
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        where = f"at step {step} ({losses})" if step >= 0 else "on another rank"
        raise SpadekitError(f"Training diverged {where}; {kept}. Lower the learning rates or use train.precision "
                            "= 'fp32', then resume with --resume.")
