"""Run the trainer's multi-process paths on one machine: a process group, DDP, SyncBatchNorm (CUDA only) and
bf16 / fp16 (with gradient scaling) autocast. The group has one rank, and DDP (and on CUDA SyncBatchNorm) are
forced on (the trainer enables them only for several ranks), so that the same code runs as on 8 GPUs.

    python benchmarks/cuda_paths.py SHARDS RUN_ROOT            # on a GPU: NCCL, fp32, bf16 and fp16
    python benchmarks/cuda_paths.py SHARDS RUN_ROOT --device cpu   # gloo, fp32 (tests/test_benchmarks.py)
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from spadekit.checkpoints import latest_checkpoint, load_checkpoint
from spadekit.config import load_recipe
from spadekit.train import loop
from spadekit.train.distributed import DistEnv
from spadekit.train.run_setup import check_run_dir

TINY = {"data.load_size": 72, "data.crop_size": 64, "data.batch_size": 4, "data.num_workers": 2,
        "model.ngf": 8, "model.use_vae": True, "model.z_dim": 16, "discriminator.ndf": 16,
        "loss.lambda_vgg": 0.0, "train.max_steps": 4, "train.log_every": 2, "train.sample_every": 4,
        "train.checkpoint_every": 4}


class _OneRankGroup(DistEnv):
    @property
    def distributed(self) -> bool:
        return True


def run(shards: Path, root: Path, device: torch.device) -> list[str]:
    """Train a tiny SPADE for 4 steps per precision in a one-rank group; one line per precision."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=0, world_size=1)
    env = _OneRankGroup(0, 0, 1, device, backend)
    seen = []
    original = nn.SyncBatchNorm.forward

    def spy(self, x):
        seen.append(type(self).__name__)
        return original(self, x)

    nn.SyncBatchNorm.forward = spy
    lines = []
    try:
        for precision in ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32",):
            recipe = load_recipe(None, {**TINY, "data.shards": str(shards), "train.precision": precision})
            run_dir = root / f"ddp_{precision}"
            job = loop.TrainJob(recipe, run_dir)
            loop.run_worker(env, replace(job, run_info=check_run_dir(recipe, run_dir, resume=False)))
            state = load_checkpoint(latest_checkpoint(run_dir))
            scale = state["scalers"][0].get("scale") if precision == "fp16" else None
            lines.append(f"{precision} ({backend}): DDP trained {state['step']} steps; SyncBatchNorm forwards "
                         f"{len(seen)}; fp16 loss scale {scale}")
            print(lines[-1], flush=True)
    finally:
        nn.SyncBatchNorm.forward = original
        dist.destroy_process_group()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards", type=Path)
    parser.add_argument("root", type=Path)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    run(args.shards, args.root, torch.device(args.device))


if __name__ == "__main__":
    main()
