"""Where the training step's time goes: torch.profiler over a few steps of perf's training step (COCO-Stuff
configuration, no VGG), a table of the operators by their own time on the device (GPU kernels on a GPU, CPU time
on a CPU), and the share of the step spent in convolutions and matmuls.

    python benchmarks/profile_step.py --precision bf16 --batch 32 [--channels-last] [--compile] [--size 256]
        [--steps 3] [--rows 25] [--trace step.json]
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from spadekit.device import check_precision
from spadekit.perf import sync_device, training_step

# operator names of the dense work (convolutions, their gradients, matmuls) as the profiler lists them
DENSE = ("conv", "mm", "gemm", "matmul", "cutlass", "cudnn", "sm90_", "sm80_", "xmma", "addmm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="bf16")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--trace", help="also write a Chrome trace (chrome://tracing, Perfetto) to this path")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_precision(args.precision, device)
    step = training_step(args.precision, device, size=args.size, batch=args.batch,
                         channels_last=args.channels_last, compile=args.compile)
    for _ in range(3):  # compilation, cuDNN's algorithm search, the allocator's first pages
        step()
    sync_device(device)
    print(profile_table(step, device, args.steps, args.rows, args.trace))


def profile_table(step, device: torch.device, steps: int, rows: int, trace: str | None = None) -> str:
    """The profiler's operator table over `steps` calls of `step`, and the dense operators' share of the time."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync_device(device)
    if trace:
        prof.export_chrome_trace(trace)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    total = sum(getattr(e, key) for e in events)
    dense = sum(getattr(e, key) for e in events if any(word in e.key.lower() for word in DENSE))
    share = f"dense operators (convolutions, matmuls): {100 * dense / max(total, 1):.0f}% of " \
            f"{total / 1e3 / steps:.1f} ms of {'device' if device.type == 'cuda' else 'CPU'} time per step"
    return events.table(sort_by=key, row_limit=rows) + "\n" + share


if __name__ == "__main__":
    main()
