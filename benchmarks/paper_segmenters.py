"""Seconds per image of the paper's evaluation segmenters at their Table 1 protocol resolution, and their sizes.

    python benchmarks/paper_segmenters.py [--device cpu] [--repeats 3] [--only drn,upernet,deeplabv2] [--json OUT]

Each plugin runs its published test procedure (drn: single scale; upernet: the five scales of the CSAIL config;
deeplabv2: MSC at 1, 0.5, 0.75) on one image at the resolution bench segments generated images at: 512x256
for Cityscapes, 256x256 for ADE20K and COCO-Stuff. The networks are built with random weights (the published
files cannot be downloaded here; time does not depend on the values). Median of `repeats` after one warm-up,
in fp32, as the protocol prescribes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from spadekit.errors import SpadekitError

SIZES = {"drn": (256, 512), "upernet": (256, 256), "deeplabv2": (256, 256)}  # (height, width)


def build(name: str, device: torch.device):
    """The plugin's segmenter around its network with random weights."""
    if name == "drn":
        from spadekit_plugins.drn.network import DRNSeg
        from spadekit_plugins.drn.segmenter import DrnSegmenter

        return DrnSegmenter(DRNSeg(), device=device)
    if name == "upernet":
        from spadekit_plugins.upernet.network import Resnet, SegmentationModule, UPerNet
        from spadekit_plugins.upernet.segmenter import UperNetSegmenter
        from spadekit_plugins.upernet.spec import UperNetOptions

        return UperNetSegmenter(SegmentationModule(Resnet(), UPerNet()), UperNetOptions(), device)
    if name == "deeplabv2":
        from spadekit_plugins.deeplabv2.network import N_CLASSES, deeplabv2_resnet101_msc
        from spadekit_plugins.deeplabv2.segmenter import DeepLabV2Segmenter

        return DeepLabV2Segmenter(deeplabv2_resnet101_msc(N_CLASSES), device)
    raise SpadekitError(f"Unknown segmenter {name!r}; choose from {', '.join(SIZES)}.")


def parameters(segmenter) -> int:
    return sum(p.numel() for p in segmenter.model.parameters())


def seconds_per_image(segmenter, size: tuple[int, int], device: torch.device, repeats: int) -> list[float]:
    image = torch.randint(0, 256, (1, 3, *size), generator=torch.Generator().manual_seed(0)).float().div(255)
    image = image.to(device)
    segmenter.predict(image)  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        segmenter.predict(image)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(SIZES))
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device(args.device)
    results = {}
    for name in args.only.split(","):
        segmenter = build(name, device)
        times = seconds_per_image(segmenter, SIZES[name], device, args.repeats)
        h, w = SIZES[name]
        results[name] = {"width": w, "height": h, "parameters": parameters(segmenter),
                         "seconds_median": statistics.median(times), "seconds": times,
                         "device": str(device), "threads": torch.get_num_threads()}
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"{name:10s} {w}x{h}: {statistics.median(times):.2f} s/image (runs {runs}), "
              f"{parameters(segmenter):,} parameters", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
