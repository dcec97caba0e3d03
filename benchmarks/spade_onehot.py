"""SPADE's first conv on the one-hot semantics as table lookups (`spadekit.nn.onehot`) vs the plain conv.

    python benchmarks/spade_onehot.py [--size 256] [--batch 1] [--repeats 3] [--threads N] [--no-ops]
        [--no-backward] [--no-generator] [--spade] [--label-nc 182] [--device cpu]

For the spade generator (ngf 64, COCO-Stuff's label space: 182 classes + don't-care + instance edges = 184
input channels, fp32) it prints the median of `repeats` timings, after a warm-up, of
- the generator forward (eval mode, no grad), every SPADE on the inference fast path (`spadekit.nn.spade_fast`)
  with its lookups off ("plain") and as by default ("fast": wherever `spadekit.nn.onehot.one_hot_conv_pays`);
- one training-style step: forward + backward of the generator in train mode;
- unless --no-ops: the lone conv (label channels -> 128, 3x3) at each resolution the generator uses, forward
  and forward + backward (weight and bias gradients), plain vs lookup;
- with --spade: lone SPADE modules at the generator's widths per resolution, plain vs lookup (forced on).
--device cuda times on a GPU (synchronizing); --no-generator skips the generator (it needs the plugin installed).
Plain and fast runs are interleaved, so load from other processes hits both alike; report `uptime` with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from spadekit.nn.onehot import one_hot_conv2d
from spadekit.nn.semantics import LabelSpace
from spadekit.nn.spade import SPADE
from spadekit.nn.spade_fast import FastSPADE, enable_fast_path
from spadekit.perf import blocky_semantics


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def compare(name: str, plain, fast, repeats: int) -> None:
    """Warm both up, then alternate them `repeats` times; print medians in ms."""
    plain(), fast()
    t_plain, t_fast = [], []
    for _ in range(repeats):
        t_plain += timed(plain, 1)
        t_fast += timed(fast, 1)
    mp, mf = statistics.median(t_plain) * 1e3, statistics.median(t_fast) * 1e3
    print(f"{name:<46} plain {mp:9.2f} ms   fast {mf:9.2f} ms   {mp / mf:5.2f}x", flush=True)


def set_fast(model: torch.nn.Module, on: bool | None) -> None:
    """Every SPADE on the fast path with False: the plain conv; None: the lookup where `one_hot_conv_pays` (the
    default); True: always."""
    for module in enable_fast_path(model).modules():
        if isinstance(module, FastSPADE):
            module.use_one_hot_conv = on


def bench_generator(args, space: LabelSpace) -> None:
    from spadekit.generator import GeneratorContext, build_generator

    generator = build_generator("spade", {}, GeneratorContext(space, args.size, 1.0)).to(args.device)
    semantics = blocky_semantics(space, args.batch, args.size).to(args.device)
    spades = [m for m in generator.modules() if isinstance(m, SPADE)]
    print(f"generator: {sum(p.numel() for p in generator.parameters()) / 1e6:.1f}M parameters, {len(spades)} SPADEs, "
          f"semantics {tuple(semantics.shape)}")

    def forward(on: bool | None):
        def run():
            set_fast(generator, on)
            with torch.inference_mode():
                generator(semantics)
        return run

    def train_step(on: bool | None):
        def run():
            set_fast(generator, on)
            generator.zero_grad(set_to_none=True)
            generator(semantics).square().mean().backward()
        return run

    generator.eval()
    with torch.inference_mode():
        set_fast(generator, False)
        ref = generator(semantics)
        set_fast(generator, None)
        diff = (generator(semantics) - ref).abs().max().item()
    print(f"forward max |fast - plain| = {diff:.2e}")
    compare(f"generator forward, {args.size}px, b{args.batch}", forward(False), forward(None), args.repeats)
    if not args.no_backward:
        generator.train()
        compare(f"generator forward+backward, {args.size}px, b{args.batch}", train_step(False), train_step(None),
                args.repeats)


def bench_ops(args, space: LabelSpace) -> None:
    torch.manual_seed(0)
    hidden, k = 128, 3
    weight = (torch.randn(hidden, space.semantic_nc, k, k, device=args.device) * 0.02).requires_grad_()
    bias = torch.zeros(hidden, device=args.device, requires_grad=True)

    def conv(semantics: torch.Tensor, fast: bool, backward: bool):
        def run():
            with torch.set_grad_enabled(backward):
                if fast:
                    out = one_hot_conv2d(semantics, weight, bias, space.one_hot_nc, k // 2)
                else:
                    out = F.conv2d(semantics, weight, bias, padding=k // 2)
                if backward:
                    out.backward(torch.ones_like(out))
        return run

    size = args.size
    while size >= 8:
        semantics = blocky_semantics(space, args.batch, size).to(args.device)
        repeats = args.repeats if size >= 128 else 5 * args.repeats
        for backward in (False, True):
            compare(f"conv {space.semantic_nc}->{hidden} {'fwd+bwd' if backward else 'forward'}, {size}px, "
                    f"b{args.batch}", conv(semantics, False, backward), conv(semantics, True, backward), repeats)
        size //= 2


def bench_spade(args, space: LabelSpace) -> None:
    """Whole SPADE modules (conv, ReLU, the gamma/beta convs, modulation) at the generator's widths (ngf 64)."""

    def step(spade: FastSPADE, x: torch.Tensor, semantics: torch.Tensor, fast: bool, backward: bool):
        def run():
            spade.use_one_hot_conv = fast
            if backward:
                spade(x, semantics).square().mean().backward()
            else:
                with torch.inference_mode():
                    spade(x, semantics)
        return run

    size, norm_nc = args.size, 64
    while size >= 8:
        spade = enable_fast_path(SPADE(norm_nc, space.semantic_nc, one_hot_nc=space.one_hot_nc).to(args.device))
        semantics = blocky_semantics(space, args.batch, size).to(args.device)
        x = torch.randn(args.batch, norm_nc, size, size, device=args.device, requires_grad=True)
        repeats = args.repeats if size >= 128 else 5 * args.repeats
        for backward in (False, True):
            compare(f"SPADE({norm_nc}) {'fwd+bwd' if backward else 'forward'}, {size}px, b{args.batch}",
                    step(spade, x, semantics, False, backward), step(spade, x, semantics, True, backward), repeats)
        size, norm_nc = size // 2, min(2 * norm_nc, 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--label-nc", type=int, default=182, help="classes without don't-care (COCO-Stuff: 182)")
    parser.add_argument("--no-ops", action="store_true", help="skip the per-resolution conv timings")
    parser.add_argument("--no-backward", action="store_true", help="skip the generator forward+backward")
    parser.add_argument("--no-generator", action="store_true", help="skip the generator timings")
    parser.add_argument("--spade", action="store_true", help="also time lone SPADE modules per resolution")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    space = LabelSpace(args.label_nc, True, True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.2f}, fp32, "
          f"{space.semantic_nc} input channels ({space.one_hot_nc} one-hot)")
    if not args.no_ops:
        bench_ops(args, space)
    if args.spade:
        bench_spade(args, space)
    if not args.no_generator:
        bench_generator(args, space)


if __name__ == "__main__":
    main()
