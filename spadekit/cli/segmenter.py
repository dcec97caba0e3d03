"""`spadekit segmenter train|predict`: train a segmenter, or label photos with one (auto-labelling, the mIoU
benchmark, checking a segmenter on your own photos)."""

from __future__ import annotations

from pathlib import Path

import typer

from spadekit.errors import SpadekitError

app = typer.Typer(
    help="Train segmenters, or label photos with one (auto-labelling, the mIoU benchmark).", no_args_is_help=True
)


@app.command("train")
def train_command(
    shards: Path = typer.Argument(..., help="A folder written by `spadekit prepare` (train and val splits)."),
    out: Path = typer.Option(..., "--out", help="Folder for segmenter.pt and metrics.jsonl."),
    segmenter: str = typer.Option(
        "smp", "--segmenter", help="A trainable segmenter plugin (see spadekit.segmenter.TrainableSegmenter)."
    ),
    arch: str = typer.Option("unet", "--arch", help="smp architecture: unet, fpn, deeplabv3plus, ..."),
    encoder: str = typer.Option("resnet18", "--encoder", help="smp encoder: resnet18, resnet34, ..."),
    encoder_weights: str = typer.Option(
        None, "--encoder-weights", help="Pretrained encoder, e.g. imagenet (needs its weights file); default: random."
    ),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Passes over the train split."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images per step."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="Peak learning rate (AdamW, cosine decay)."),
    size: int = typer.Option(256, "--size", min=32, help="Shorter side of the network's input (multiple of 32)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Data loader processes."),
    seed: int = typer.Option(0, "--seed", help="The same seed gives the same segmenter."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or cuda:N; auto: a GPU if there is one."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing OUT/segmenter.pt."),
    sets: list[str] = typer.Option(None, "--set", help="A segmenter option, e.g. --set input_size=64."),
) -> None:
    """Train a segmenter (smp by default) on SHARDS' train split; val mIoU and pixel accuracy after every epoch.
    --arch, --encoder, --encoder-weights and --size set the plugin's options of those names (--size:
    input_size) where it has them."""
    from spadekit.cli.common import parse_sets
    from spadekit.console import warn
    from spadekit.data.workers import cap_workers
    from spadekit.segmenter_train import SegmenterTrainJob, train_segmenter

    job = SegmenterTrainJob(
        shards=shards,
        out=out,
        arch=arch,
        encoder=encoder,
        encoder_weights=encoder_weights,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        size=size,
        workers=cap_workers(workers, "--workers", warn=warn),
        seed=seed,
        device=device,
        force=force,
        segmenter=segmenter,
        options=parse_sets(sets),
    )
    train_segmenter(job)


@app.command("predict")
def predict_command(
    inputs: list[Path] = typer.Argument(..., help="Photos, or folders of photos."),
    segmenter: str = typer.Option(..., "--segmenter", help="A segmenter plugin: drn, upernet, deeplabv2, smp, ..."),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", help="Its weights (upernet: the folder of both files) [default: the torch hub cache]"
    ),
    out: Path = typer.Option(..., "--out", help="Folder for <photo stem>.png label maps."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N [default: cuda if available]"),
    precision: str = typer.Option("fp32", "--precision", help="fp32 (the published procedure), bf16 or fp16."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Photos per batch (photos of one size)."),
    sets: list[str] = typer.Option(None, "--set", help="A segmenter option, e.g. --set img_sizes=[300] (upernet)."),
) -> None:
    """Label photos with a segmenter: OUT/<stem>.png holds, at the photo's size, the ids of the segmenter's
    dataset (Cityscapes trainIds for drn, ADE20K 1..150 for upernet, COCO-Stuff 0..181 for deeplabv2)."""
    from spadekit.cli.common import parse_sets
    from spadekit.console import console, progress_bar
    from spadekit.device import check_precision, pick_device  # imports torch
    from spadekit.segmenter import build_segmenter
    from spadekit.segmenter_predict import PredictJob, photo_files, predict_files

    chosen = pick_device(device)
    if precision not in ("fp32", "bf16", "fp16"):
        raise SpadekitError(f"--precision {precision!r} is not one of fp32, bf16, fp16.")
    check_precision(precision, chosen, "--precision")
    job = PredictJob(inputs=list(inputs), out=out, device=chosen, precision=precision, batch_size=batch_size)
    total = len(photo_files(job.inputs))
    model = build_segmenter(segmenter, checkpoint, options=parse_sets(sets), device=chosen)
    console.print(f"segmenter {segmenter}: {model.facts.name}, {model.facts.label_nc} classes, {precision} on "
                  f"{chosen}", highlight=False)
    with progress_bar("img") as bar:
        task = bar.add_task("predict", total=total)
        written = predict_files(model, job, lambda n: bar.advance(task, n))
    console.print(f"{written} label maps in {out}", highlight=False)
