"""Samples/s of ShardDataset vs the same samples as PNG files, through the SAME transforms and DataLoader.

    python benchmarks/loader_throughput.py SHARDS [--split train] [--crop 256] [--load 286] [--batch 8]
        [--seconds 10] [--repeats 2] [--json OUT] [--synthesize N [--smooth]]

Each (loader, workers) pair is timed `repeats` times, interleaved, and the best rate kept: on a shared
machine other processes only ever slow a run down.

--synthesize N first writes N random samples (256-320 px, blocky labels/instances; noise images, or
blurred noise with --smooth) as shards into SHARDS, for trying the benchmark without a real dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from spadekit.data.dataset import ShardDataset, finish, make_loader
from spadekit.data.manifest import DatasetFacts, Manifest, ShardInfo, SplitInfo
from spadekit.data.sample import Sample
from spadekit.data.shards import shard_name, write_shard
from spadekit.data.transforms import (
    Preprocess,
    crop_flip,
    make_plan,
    resize_image,
    transform_map,
)

WORKERS = (0, 1, 2)
# PIL's np.asarray views are read-only; torch.from_numpy only reads them, so its warning is noise here
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


class PngDataset(ShardDataset):
    """The baseline: the shard samples exported as PNG files, decoded with PIL, then ShardDataset.process."""

    def __init__(self, png_dir: Path, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.png_dir = png_dir

    def load_sample(self, i: int) -> Sample:
        stem = self.png_dir / f"{i:06d}"
        image = np.asarray(Image.open(f"{stem}_image.png").convert("RGB"))
        label = np.asarray(Image.open(f"{stem}_label.png"))
        instance = None
        if self.has_instances:
            instance = np.asarray(Image.open(f"{stem}_instance.png")).astype(np.int32)
        return Sample(f"{i:06d}", image, label, instance)


def export_png(dataset: ShardDataset, out: Path) -> int:
    """Image RGB PNG, label 8-bit (16-bit if needed) PNG, instance 16-bit PNG; returns bytes written."""
    for i in range(len(dataset)):
        s = dataset.reader.read(i)
        Image.fromarray(s.image).save(out / f"{i:06d}_image.png")
        Image.fromarray(s.label).save(out / f"{i:06d}_label.png")  # uint8 -> mode L, uint16 -> I;16
        if s.instance is not None:
            Image.fromarray(s.instance.astype(np.uint16)).save(out / f"{i:06d}_instance.png")
    return sum(p.stat().st_size for p in out.iterdir())


def throughput(dataset: ShardDataset, workers: int, batch: int, seconds: float) -> float:
    """Finished batches per second, as a trainer receives them. The consuming process gets the cores the
    workers leave free: oversubscribed, its intra-op threads would halve a worker's speed on 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))
    try:
        return _throughput(dataset, workers, batch, seconds)
    finally:
        torch.set_num_threads(threads)


def _throughput(dataset: ShardDataset, workers: int, batch: int, seconds: float) -> float:
    loader = make_loader(dataset, batch, num_workers=workers, shuffle=True, drop_last=True, seed=0)
    epoch, seen, start = 0, 0, None
    warm = max(2, 2 * workers)  # batches to skip: worker start-up and first HDF5/file opens
    while True:
        loader.set_epoch(epoch)
        for b in loader:
            if warm > 0:
                warm -= 1
                start = time.perf_counter() if warm == 0 else None
                continue
            seen += len(b["key"])
            if time.perf_counter() - start >= seconds:
                rate = seen / (time.perf_counter() - start)
                del loader  # stops persistent workers
                return rate
        epoch += 1


def breakdown(shards: ShardDataset, pngs: PngDataset, n: int = 64, rounds: int = 3) -> dict[str, float]:
    """Mean ms per sample of each step, in one thread (as inside a DataLoader worker); the best of
    `rounds` passes, as other processes on the machine only ever add time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    best: dict[str, float] = {}
    for _ in range(rounds):
        steps: dict[str, float] = {}

        def timed(name, fn, *args, steps=steps):
            t = time.perf_counter()
            out = fn(*args)
            steps[name] = steps.get(name, 0.0) + (time.perf_counter() - t) * 1e3 / n
            return out

        for i in range(n):  # a loop of its own: interleaved with PNG decoding, reads look slower
            timed("read shard (HDF5)", shards.load_sample, i)
        for i in range(n):
            s = timed("decode PNG (PIL)", pngs.load_sample, i)
            h, w = s.label.shape
            plan = timed("plan + label check", _plan, shards, s, w, h, i)
            image = timed("image bicubic resize", resize_image, s.image, plan.size)
            image = timed("image crop + flip", crop_flip, image, plan)
            item = timed("label + instance nearest/crop/flip", _maps, s, plan, image)
            timed("finish: float image, edges (consumer)", finish, item)
        best = {k: min(v, best.get(k, v)) for k, v in steps.items()}
    steps = best
    torch.set_num_threads(threads)
    steps["total shard sample"] = sum(v for k, v in steps.items() if k != "decode PNG (PIL)")  # both sides
    total = steps["total shard sample"]
    steps["total PNG sample"] = total - steps["read shard (HDF5)"] + steps["decode PNG (PIL)"]
    return steps


def _plan(ds: ShardDataset, s: Sample, w: int, h: int, i: int):
    ds._check_labels(s)
    return make_plan(ds.preprocess, w, h, True, np.random.default_rng([ds.seed, 0, i]))


def _maps(s: Sample, plan, image: torch.Tensor) -> dict:
    label = torch.from_numpy(transform_map(s.label, plan))[None]
    instance = torch.from_numpy(transform_map(s.instance, plan).astype(np.int32))[None]
    return {"image": image.contiguous(), "label": label, "instance": instance, "key": s.key}


def synthesize(root: Path, n: int, smooth: bool, per_shard: int = 64) -> None:
    """Random samples of 256-320 px: blocky labels/instances, noise (or blurred noise) images."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        h, w = int(rng.integers(256, 321)), int(rng.integers(256, 321))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if smooth:
            image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(2)))
        cells = rng.integers(0, 35, (h // 32 + 1, w // 32 + 1))
        label = np.kron(cells, np.ones((32, 32), int))[:h, :w].astype(np.uint8)
        instance = (label.astype(np.int32) * 1000 + (np.arange(w) // 40)[None]).astype(np.int32)
        samples.append(Sample(f"syn{i:05d}", image, label, instance))
    chunks = [samples[i : i + per_shard] for i in range(0, n, per_shard)]
    infos = []
    for k, chunk in enumerate(chunks):
        name = shard_name("train", k, len(chunks))
        digest = write_shard(root / name, "train", k, chunk)
        infos.append(ShardInfo(file=name, num_samples=len(chunk), sha256=digest))
    facts = DatasetFacts(name="random", class_names=[f"c{c}" for c in range(35)],
                         palette=[(c, c, c) for c in range(35)], has_instances=True)
    Manifest(dataset=facts, splits={"train": SplitInfo(num_samples=n, shards=infos)}).save(root)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shards", type=Path)
    ap.add_argument("--split", default="train")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--load", type=int, default=286)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--synthesize", type=int, default=0)
    ap.add_argument("--smooth", action="store_true")
    args = ap.parse_args(argv)
    if args.synthesize:
        synthesize(args.shards, args.synthesize, args.smooth)
    p = Preprocess(load_size=args.load, crop_size=args.crop)
    shards = ShardDataset(args.shards, args.split, p, train=True)
    with tempfile.TemporaryDirectory() as tmp:
        png_bytes = export_png(shards, Path(tmp))
        pngs = PngDataset(Path(tmp), args.shards, args.split, p, train=True)
        rates: dict[str, float] = {}
        for _ in range(args.repeats):
            for w in WORKERS:
                for kind, ds in (("shards", shards), ("png", pngs)):
                    rate = throughput(ds, w, args.batch, args.seconds)
                    rates[f"{kind} w{w}"] = max(rate, rates.get(f"{kind} w{w}", 0.0))
        steps = breakdown(shards, pngs, min(64, len(shards)))
    result = {"samples": len(shards), "png_mb_per_sample": png_bytes / len(shards) / 1e6,
              "samples_per_s": rates, "ratio_1_worker": rates["shards w1"] / rates["png w1"],
              "ms_per_sample": steps}
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _print(r: dict) -> None:
    rates = r["samples_per_s"]
    print(f"{r['samples']} samples, PNG {r['png_mb_per_sample']:.3f} MB/sample")
    print(f"{'workers':>8} {'shards/s':>10} {'png/s':>10} {'ratio':>7}")
    for w in WORKERS:
        s, p = rates[f"shards w{w}"], rates[f"png w{w}"]
        print(f"{w:>8} {s:>10.1f} {p:>10.1f} {s / p:>7.2f}")
    print(f"ratio at 1 worker: {r['ratio_1_worker']:.2f}x")
    print("per-sample time, one thread (ms):")
    for k, v in r["ms_per_sample"].items():
        print(f"  {k:<36} {v:7.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
