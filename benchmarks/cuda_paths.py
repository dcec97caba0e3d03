"""Run the trainer's CUDA-only paths on a GPU machine: NCCL process group, DDP, SyncBatchNorm, and bf16 / fp16
(with gradient scaling) autocast. With one GPU the NCCL group has one rank, and DDP and SyncBatchNorm are
forced on (the trainer enables them only for several ranks), so that the same code runs as on 8 GPUs.

    python benchmarks/cuda_paths.py SHARDS RUN_ROOT
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from spadekit.checkpoints import latest_checkpoint, load_checkpoint
from spadekit.config import load_recipe
from spadekit.train import loop
from spadekit.train.distributed import DistEnv

TINY = {"data.load_size": 72, "data.crop_size": 64, "data.batch_size": 4, "data.num_workers": 2,
        "model.ngf": 8, "model.use_vae": True, "model.z_dim": 16, "discriminator.ndf": 16,
        "loss.lambda_vgg": 0.0, "train.max_steps": 4, "train.log_every": 2, "train.sample_every": 4,
        "train.checkpoint_every": 4}


class _OneRankGroup(DistEnv):
    @property
    def distributed(self) -> bool:
        return True


def main() -> None:
    shards, root = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("nccl", rank=0, world_size=1)
    env = _OneRankGroup(0, 0, 1, torch.device("cuda", 0), "nccl")
    seen = []
    original = nn.SyncBatchNorm.forward

    def spy(self, x):
        seen.append(type(self).__name__)
        return original(self, x)

    nn.SyncBatchNorm.forward = spy
    for precision in ("fp32", "bf16", "fp16"):
        recipe = load_recipe(None, {**TINY, "data.shards": str(shards), "train.precision": precision})
        run = root / f"ddp_{precision}"
        loop.prepare_run_dir(recipe, run, resume=False)
        loop.run_worker(env, loop.TrainJob(recipe, run))
        state = load_checkpoint(latest_checkpoint(run))
        scale = state["scalers"][0].get("scale") if precision == "fp16" else None
        print(f"{precision}: DDP+NCCL+SyncBatchNorm trained {state['step']} steps; SyncBatchNorm forwards "
              f"{len(seen)}; fp16 loss scale {scale}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
