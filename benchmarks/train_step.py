"""Time one training step (a G update, then a D update) of a SPADE configuration on this machine.

The issue's reference point: the COCO-Stuff 256x256 configuration at batch 1, hinge + feature matching, no
VGG loss. Prints seconds per step (median after warm-up steps).

    python benchmarks/train_step.py --precision fp32 [--channels-last] [--label-nc 182] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from spadekit.config import load_recipe
from spadekit.generator import GeneratorContext, build_generator, count_parameters
from spadekit.nn.semantics import LabelSpace
from spadekit.nn.spade import SPADE
from spadekit.train import build
from spadekit.train.objective import GeneratorStep, Objective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--label-nc", type=int, default=182)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="no one-hot lookup convs: the official computation")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    build.check_precision(args.precision, device)
    times = _time_steps(args, device)
    result = {"device": str(device), "precision": args.precision, "channels_last": args.channels_last,
              "plain": args.plain,
              "size": args.size, "batch": args.batch, "step_s_median": statistics.median(times),
              "step_s": times, "threads": torch.get_num_threads()}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


def _time_steps(args, device: torch.device) -> list[float]:
    recipe = load_recipe(None, {"loss.lambda_vgg": 0.0})
    space = LabelSpace(args.label_nc, dontcare=True, use_instance=True)
    torch.manual_seed(0)
    context = GeneratorContext(space, args.size)
    generator = build_generator("spade", {}, context).to(device)
    discriminator = build.build_discriminator(recipe, context).to(device)
    print(f"generator {count_parameters(generator) / 1e6:.2f}M parameters", flush=True)
    for module in generator.modules():
        if isinstance(module, SPADE):
            module.use_one_hot_conv = False if args.plain else None
    label = torch.randint(0, space.one_hot_nc, (args.batch, 1, args.size, args.size), device=device)
    semantics = torch.zeros(args.batch, space.semantic_nc, args.size, args.size, device=device)
    semantics.scatter_(1, label, 1.0)
    real = torch.rand(args.batch, 3, args.size, args.size, device=device) * 2 - 1
    if args.channels_last:
        generator, discriminator = (m.to(memory_format=torch.channels_last) for m in (generator, discriminator))
        semantics, real = (t.contiguous(memory_format=torch.channels_last) for t in (semantics, real))
    objective = Objective(GeneratorStep(generator), discriminator, recipe.loss, None)
    opt_G = build.adam(generator.parameters(), 1e-4, recipe)
    opt_D = build.adam(discriminator.parameters(), 4e-4, recipe)
    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        for optimizer, losses in ((opt_G, lambda: objective.generator_losses(semantics, real)[0]),
                                  (opt_D, lambda: objective.discriminator_losses(semantics, real))):
            with build.autocast(args.precision, device):
                loss = sum(losses().values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        print(f"step {i}: {elapsed:.2f} s{' (warm-up)' if i < args.warmup else ''}", flush=True)
        if i >= args.warmup:
            times.append(elapsed)
    return times


if __name__ == "__main__":
    main()
