"""`spadekit synth MASK.png [--style PHOTO]`: paint photographs from label masks with a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spadekit.cli.common import check_output
from spadekit.console import console
from spadekit.errors import SpadekitError


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
    resample_region: Annotated[str | None, typer.Option(
        "--resample-region", metavar="CLASS_OR_MASK",
        help="Keep the --seed image outside this region and draw a new latent inside it for each sample: a class "
             "of the run's dataset (name or id) or a mask PNG (non-zero pixels). Runs with a latent per pixel "
             "(oasis).")] = None,
) -> None:
    """Synthesize an image for each mask with the run's EMA generator, guided by a style photo if given."""
    from spadekit.device import pick_device
    from spadekit.masks import mask_files, read_style_photo
    from spadekit.synth import MaskJob, most_recent_run, output_targets, paint_masks, run_of_checkpoint
    from spadekit.synthesis import Synthesizer

    if run is not None and checkpoint is not None:
        raise SpadekitError("Give --run or --checkpoint, not both.")
    run_dir = run or (run_of_checkpoint(checkpoint) if checkpoint else most_recent_run())
    masks = mask_files(mask)
    targets = output_targets(mask, masks, n, out)
    for paths in targets.values():  # every output writable before the model loads
        for path in paths:
            check_output(path, "--out")
    photo = read_style_photo(style) if style is not None else None
    chosen = pick_device(device)
    engine = Synthesizer.load(run_dir, checkpoint, chosen, precision)
    origin = "" if run or checkpoint else " (the most recent run under ./runs)"
    console.print(f"run {run_dir}{origin}: {engine.info.generator}, {engine.run.checkpoint.name}, "
                  f"{engine.precision} on {chosen}", highlight=False)
    if n > 1 and not engine.takes_latent:
        raise SpadekitError(f"Run {run_dir}'s generator takes no latent, so all {n} samples would be the same "
                            "image; drop --n.")
    if resample_region is not None and not engine.takes_spatial_latent:
        raise SpadekitError(f"Run {run_dir}'s generator ({engine.info.generator}) takes one latent per image, so "
                            "--resample-region cannot change one region alone; use a run of a generator with a "
                            "latent per pixel (oasis).")
    encoded = engine.encode_style(photo) if photo is not None else None
    job = MaskJob(masks, targets, n, seed, instance, mask.is_dir(), keep_size, batch_size, resample_region)
    paint_masks(engine, job, encoded)
    where = targets[masks[0]][0].parent if len(masks) > 1 or len(targets[masks[0]]) > 1 else targets[masks[0]][0]
    console.print(f"[green]done:[/] {len(masks) * n} image(s) in {where}", highlight=False)
