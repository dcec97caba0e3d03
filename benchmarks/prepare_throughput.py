"""Images/s of `spadekit prepare cityscapes` with 1 and 2 workers, on a Cityscapes-layout folder at 2048x1024.

    python benchmarks/prepare_throughput.py [--images 24] [--workers 1,2] [--repeats 2] [--root DIR] [--json OUT]

The folder (made once under --root, default a temp folder) is laid out exactly like the download:
leftImg8bit/train/<city>/<stem>_leftImg8bit.png and gtFine/train/<city>/<stem>_gtFine_{labelIds,instanceIds}.png,
2048x1024 each. The photos are smooth colour fields with fine noise, so that they compress about as well as
real street photos (a few MB per PNG), which matters: PNG decoding is most of the work. Each worker count is
timed `repeats` times, interleaved, and the best run kept (other processes only ever slow a run down).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spadekit.data.prepare import prepare

W, H = 2048, 1024
CITIES = ("aachen", "bochum", "bremen")


def smooth_photo(rng: np.random.Generator) -> np.ndarray:
    coarse = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)
    photo = np.asarray(Image.fromarray(coarse).resize((W, H), Image.BICUBIC)).astype(np.int16)
    photo += rng.integers(-6, 7, photo.shape, dtype=np.int16)
    return np.clip(photo, 0, 255).astype(np.uint8)


def label_maps(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Street-like bands of labelIds with a few cars (26) and persons (24) as instances."""
    label = np.full((H, W), 23, np.uint8)  # sky
    label[300:550] = 11  # building
    label[550:650] = 21  # vegetation
    label[650:] = 7  # road
    instance = label.astype(np.int32)
    for k in range(int(rng.integers(3, 8))):
        cls = 26 if k % 2 == 0 else 24
        y, x = int(rng.integers(600, 900)), int(rng.integers(0, W - 200))
        h, w = (120, 200) if cls == 26 else (180, 60)
        label[y : y + h, x : x + w] = cls
        instance[y : y + h, x : x + w] = cls * 1000 + k
    return label, instance


def make_fixture(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        city = CITIES[i % len(CITIES)]
        stem = f"{city}_{i:06d}_000019"
        images, gt = root / "leftImg8bit/train" / city, root / "gtFine/train" / city
        images.mkdir(parents=True, exist_ok=True)
        gt.mkdir(parents=True, exist_ok=True)
        label, instance = label_maps(rng)
        Image.fromarray(smooth_photo(rng)).save(images / f"{stem}_leftImg8bit.png")
        Image.fromarray(label).save(gt / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(instance.astype(np.uint16)).save(gt / f"{stem}_gtFine_instanceIds.png")


def time_prepare(src: Path, workers: int, scratch: Path) -> float:
    out = scratch / f"shards-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = prepare("cityscapes", out, src=src, workers=workers, settings={"shard_size": 8})
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return summary.splits["train"].samples / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--root", type=Path, default=None, help="where the fixture is made (kept if given)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="prepare-bench-"))
    src = args.root or scratch / "cityscapes"
    if not (src / "leftImg8bit").is_dir():
        print(f"making {args.images} Cityscapes-layout samples at {W}x{H} in {src} ...", flush=True)
        make_fixture(src, args.images)
    workers = [int(w) for w in args.workers.split(",")]
    best = {w: 0.0 for w in workers}
    for _ in range(args.repeats):
        for w in workers:
            best[w] = max(best[w], time_prepare(src, w, scratch))
    for w in workers:
        print(f"workers={w}: {best[w]:.2f} images/s ({args.images} images of {W}x{H}, best of {args.repeats})")
    if args.json:
        args.json.write_text(json.dumps({f"prepare_images_per_s_workers{w}": best[w] for w in workers}) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
