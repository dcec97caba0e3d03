"""`spadekit synth`'s work: find the run, plan the output files, paint mask files in batches, write them.

The painting itself is `spadekit.synthesis.Synthesizer`'s; this module reads the masks (and instance maps)
from disk, keeps the masks x samples order of the latent draws, and writes one PNG per sample or a row of
samples per mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spadekit.checkpoints import latest_checkpoint
from spadekit.console import progress
from spadekit.errors import SpadekitError
from spadekit.imageio import save_png
from spadekit.images import tile
from spadekit.masks import read_instance, read_mask, read_region
from spadekit.run_info import RunInfo
from spadekit.synthesis import Style, Synthesizer, seeded

RUNS = Path("runs")


@dataclass(frozen=True)
class MaskJob:
    """What to paint: mask files, their output files, and how."""

    masks: list[Path]
    targets: dict[Path, list[Path]]  # per mask: one file per sample, or one file holding them as a row
    n: int = 1
    seed: int = 0
    instance: Path | None = None  # an instance map, or a folder of them named as the masks
    folder: bool = False  # the masks came from a folder
    keep_size: bool = False
    batch_size: int = 8
    resample_region: str | None = None  # a class (name or id) or a mask file: resample the latent there only


def paint_masks(engine: Synthesizer, job: MaskJob, style: Style | None) -> None:
    """Paint every mask file in batches (latents drawn in the order masks x samples) into its target files."""
    rng, n = seeded(job.seed), job.n
    with progress("synth", len(job.masks), "mask") as advance:
        for start in range(0, len(job.masks), job.batch_size):
            chunk = job.masks[start : start + job.batch_size]
            labels = [read_mask(p, engine.info.facts) for p in chunk]
            instances = [instance_for(p, job.instance, job.folder) for p in chunk]
            regions = None
            if job.resample_region is not None:
                regions = [read_region(job.resample_region, lab, engine.info.facts, f"mask {p}")
                           for lab, p in zip(labels, chunk, strict=True)]
            images = engine.paint_maps(labels, instances, n, style, rng, regions)
            for i, path in enumerate(chunk):
                samples = images[i * n : (i + 1) * n].permute(0, 2, 3, 1).numpy()
                if job.keep_size:
                    samples = [resize_bicubic(s, labels[i].shape) for s in samples]
                write_samples(job.targets[path], list(samples))
            advance(len(chunk))


def output_targets(given: Path, masks: list[Path], n: int, out: Path | None) -> dict[Path, list[Path]]:
    """Output file(s) per mask: one PNG (a grid when n > 1) for a single mask and a .png --out; else a folder
    holding <mask stem>.png, or <mask stem>_<k>.png for several samples."""
    single = not given.is_dir()
    if out is None:
        out = Path(f"{given.stem}_synth.png") if single else Path(f"{given.name}_synth")
    if single and out.suffix.lower() == ".png":
        return {masks[0]: [out]}
    if out.suffix:
        raise SpadekitError(f"--out {out} must be a folder (no suffix) for a folder of masks, or a .png file.")
    names = ([f"{m.stem}.png"] if n == 1 else [f"{m.stem}_{k}.png" for k in range(n)] for m in masks)
    return {m: [out / name for name in group] for m, group in zip(masks, names, strict=True)}


def write_samples(paths: list[Path], images: list[np.ndarray]) -> None:
    """One file per sample, or one file holding the samples as a row with white gaps."""
    if len(paths) == len(images):
        for path, image in zip(paths, images, strict=True):
            save_png(path, image)
        return
    row = tile([[torch.from_numpy(image).permute(2, 0, 1) for image in images]])
    save_png(paths[0], row.permute(1, 2, 0).numpy())


def instance_for(mask: Path, instance: Path | None, folder: bool) -> np.ndarray | None:
    """The instance map for `mask`: the --instance file, or its namesake in the --instance folder (a mask of a
    folder without one gets None: its class borders are the edges)."""
    if instance is None:
        return None
    path = instance / mask.name if instance.is_dir() else instance
    if folder and not instance.is_dir():
        raise SpadekitError("--instance must be a folder of instance maps named as the masks when MASK is a folder.")
    return read_instance(path) if path.is_file() or not folder else None


def resize_bicubic(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The generated image at the mask's (height, width), bicubic."""
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BICUBIC))


def most_recent_run(root: Path = RUNS) -> Path:
    """The run under `root` whose latest checkpoint was written last."""
    candidates = [(latest_checkpoint(p), p) for p in Path(root).iterdir() if (p / "run.json").is_file()] \
        if Path(root).is_dir() else []
    candidates = [(ckpt.stat().st_mtime, run) for ckpt, run in candidates if ckpt is not None]
    if not candidates:
        raise SpadekitError(f"No trained run under ./{root} (a folder with run.json and a checkpoint); pass "
                            "--run RUN_DIR or train one with `spadekit train RECIPE`.")
    return max(candidates)[1]


def run_of_checkpoint(checkpoint: Path) -> Path:
    """RUN_DIR of RUN_DIR/checkpoints/step_*.pt (the run.json beside it describes the generator)."""
    run_dir = Path(checkpoint).resolve().parent.parent
    if not Path(checkpoint).is_file():
        raise SpadekitError(f"Checkpoint {checkpoint} does not exist; check the path.")
    RunInfo.load(run_dir)  # a clear error when the checkpoint is not inside a run directory
    return run_dir
