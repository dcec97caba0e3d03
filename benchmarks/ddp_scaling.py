"""Multi-GPU scaling of the training step on one node: images/s at 1, 2, 4, 8 ranks and the efficiency against
linear (`spadekit.ddp_scaling`). Rank counts above the GPUs present are skipped, with a line saying so.

    python benchmarks/ddp_scaling.py --ranks 1 2 4 8 --batch-per-rank 4 --precision bf16 [--channels-last]
        [--compile] [--size 256] [--json]

COCO-Stuff 256 trains at a global batch of 32: 4 per rank on 8 GPUs, 32 on one. Weak scaling (a fixed per-rank
batch) is what --batch-per-rank measures; run it at 4 and at 32 to see both ends.
"""

from __future__ import annotations

import argparse
import json

import torch

from spadekit.ddp_scaling import describe_device, scaling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--batch-per-rank", type=int, default=4)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="bf16")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    available = torch.cuda.device_count() if torch.cuda.is_available() else None
    ranks = [n for n in args.ranks if available is None or n <= available]
    for n in sorted(set(args.ranks) - set(ranks)):
        print(f"skipped {n} ranks: this machine has {available} GPU(s)")
    rows = scaling(ranks, args.precision, args.batch_per_rank, args.size, repeats=args.repeats,
                   channels_last=args.channels_last, compile=args.compile)
    result = {"device": describe_device(), "precision": args.precision, "size": args.size,
              "channels_last": args.channels_last, "compile": args.compile, "rows": rows}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['device']}, {args.precision}, {args.size} px, batch {args.batch_per_rank} per rank")
    for row in rows:
        efficiency = "-" if row["efficiency"] is None else f"{100 * row['efficiency']:.0f}%"
        print(f"{row['ranks']} rank(s): {row['step_s']:.4f} s/step, {row['images_per_s']:.1f} images/s, "
              f"efficiency {efficiency}")


if __name__ == "__main__":
    main()
