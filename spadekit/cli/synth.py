"""`spadekit synth MASK.png [--style PHOTO]`: paint photographs from label masks with a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spadekit.cli.common import check_output
from spadekit.console import console, progress_bar
from spadekit.errors import SpadekitError

if TYPE_CHECKING:
    import numpy as np


def synth_command(
    mask: Annotated[Path, typer.Argument(help="A mask PNG (class ids, or colours of the run's palette), or a "
                                         "folder of them.")],
    style: Annotated[Path | None, typer.Option("--style", help="A photo whose style to copy (VAE runs).")] = None,
    run: Annotated[Path | None, typer.Option("--run", help="Run directory [default: the most recent under "
                                             "./runs]")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="A checkpoint file of a run "
                                                    "(RUN_DIR/checkpoints/step_*.pt).")] = None,
    instance: Annotated[Path | None, typer.Option("--instance", help="Instance map (one id per object) for the "
                                                  "mask, or a folder of them named as the masks.")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Samples per mask (VAE runs).")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the latent draws.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Output PNG (several samples: a grid), or a folder "
                                             "[default: MASK_synth.png, or FOLDER_synth/]")] = None,
    keep_size: Annotated[bool, typer.Option("--keep-size", help="Resize outputs back to the mask's size.")] = False,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda [default: cuda if available]")] = None,
    precision: Annotated[str, typer.Option("--precision", help="auto (bf16 where native), fp32, bf16 or fp16.")]
    = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Masks per batch (folders).")] = 8,
) -> None:
    """Synthesize an image for each mask with the run's EMA generator, guided by a style photo if given."""
    import torch

    from spadekit.device import pick_device
    from spadekit.masks import mask_files, read_mask, read_style_photo
    from spadekit.synth import Painter, most_recent_run, run_of_checkpoint

    if run is not None and checkpoint is not None:
        raise SpadekitError("Give --run or --checkpoint, not both.")
    run_dir = run or (run_of_checkpoint(checkpoint) if checkpoint else most_recent_run())
    masks = mask_files(mask)
    targets = _targets(mask, masks, n, out)
    _check_targets(targets)
    photo = read_style_photo(style) if style is not None else None
    chosen = pick_device(device)
    painter = Painter(run_dir, checkpoint, chosen, precision)
    origin = "" if run or checkpoint else " (the most recent run under ./runs)"
    console.print(f"run {run_dir}{origin}: {painter.info.generator}, {painter.checkpoint.name}, "
                  f"{painter.precision} on {chosen}", highlight=False)
    if n > 1 and not painter.takes_latent:
        raise SpadekitError(f"Run {run_dir}'s generator takes no latent, so all {n} samples would be the same "
                            "image; drop --n.")
    encoded = painter.encode_style(photo) if photo is not None else None
    rng = torch.Generator().manual_seed(seed)
    with progress_bar("mask") as bar:
        task = bar.add_task("synth", total=len(masks))
        for start in range(0, len(masks), batch_size):
            chunk = masks[start : start + batch_size]
            labels = [read_mask(p, painter.info.facts) for p in chunk]
            instances = [_instance_for(p, instance, mask.is_dir()) for p in chunk]
            semantics = painter.semantics(labels, instances).repeat_interleave(n, 0)
            latents = [painter.latents(n, encoded, rng) for _ in chunk]
            images = painter.paint(semantics, None if latents[0] is None else torch.cat(latents))
            for i, path in enumerate(chunk):
                samples = images[i * n : (i + 1) * n].permute(0, 2, 3, 1).numpy()
                if keep_size:
                    samples = [_resize(s, labels[i].shape) for s in samples]
                _write(targets[path], list(samples))
            bar.advance(task, len(chunk))
    where = targets[masks[0]][0].parent if len(masks) > 1 or len(targets[masks[0]]) > 1 else targets[masks[0]][0]
    console.print(f"[green]done:[/] {len(masks) * n} image(s) in {where}", highlight=False)


def _targets(given: Path, masks: list[Path], n: int, out: Path | None) -> dict[Path, list[Path]]:
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


def _check_targets(targets: dict[Path, list[Path]]) -> None:
    """Every output writable (its folder creatable, no folder in a file's place) before the model loads."""
    for paths in targets.values():
        for path in paths:
            check_output(path, "--out")


def _write(paths: list[Path], images: list[np.ndarray]) -> None:
    """One file per sample, or one file holding the samples as a row with white gaps."""
    import torch

    from spadekit.imageio import save_png
    from spadekit.images import tile

    if len(paths) == len(images):
        for path, image in zip(paths, images, strict=True):
            save_png(path, image)
        return
    row = tile([[torch.from_numpy(image).permute(2, 0, 1) for image in images]])
    save_png(paths[0], row.permute(1, 2, 0).numpy())


def _instance_for(mask: Path, instance: Path | None, folder: bool) -> np.ndarray | None:
    """The instance map for `mask`: the --instance file, or its namesake in the --instance folder (a mask of a
    folder without one gets None: its class borders are the edges)."""
    from spadekit.masks import read_instance

    if instance is None:
        return None
    path = instance / mask.name if instance.is_dir() else instance
    if folder and not instance.is_dir():
        raise SpadekitError("--instance must be a folder of instance maps named as the masks when MASK is a folder.")
    return read_instance(path) if path.is_file() or not folder else None


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The generated image at the mask's (height, width), bicubic."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BICUBIC))
