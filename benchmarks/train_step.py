"""Time one training step (a G update, then a D update) of a SPADE configuration on this machine.

The reference point: the COCO-Stuff 256x256 configuration at batch 1, hinge + feature matching, no VGG loss
(`spadekit perf` reports the same figure). Prints the median seconds per step after warm-up steps.

    python benchmarks/train_step.py --precision fp32 [--channels-last] [--compile] [--label-nc 182] [--size 256]
        [--plain] [--batch N] [--ddp]

--channels-last and --compile are the recipe's train.channels_last and train.compile; with --compile, the
first call's compile time is printed too.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist

from spadekit.device import check_precision
from spadekit.nn.semantics import LabelSpace
from spadekit.perf import compile_and_median, training_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--label-nc", type=int, default=182)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="no one-hot lookup convs: the official computation")
    parser.add_argument("--ddp", action="store_true", help="G's step and D in DistributedDataParallel in a one-rank "
                        "group (nccl on a GPU, gloo on a CPU): the single-rank DDP overhead against no DDP")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_precision(args.precision, device)
    space = LabelSpace(args.label_nc, dontcare=True, use_instance=True)
    if args.ddp:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29534")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        step = training_step(args.precision, device, space, args.size, args.batch, args.plain, args.channels_last,
                             ddp=args.ddp, compile=args.compile)
        compile_s, seconds = compile_and_median(step, args.steps, args.warmup, device)
    finally:
        if args.ddp:
            dist.destroy_process_group()
    result = {"device": str(device), "precision": args.precision, "channels_last": args.channels_last,
              "ddp": args.ddp, "compile": args.compile, "plain": args.plain, "size": args.size, "batch": args.batch,
              "step_s_median": seconds,
              "compile_s": compile_s if args.compile else None, "images_per_s": args.batch / seconds,
              "threads": torch.get_num_threads()}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
