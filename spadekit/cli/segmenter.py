"""`spadekit segmenter train`: train a segmenter for auto-labelling photos and the mIoU benchmark."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Train segmenters (auto-labelling photos, the mIoU benchmark).", no_args_is_help=True)


@app.command("train")
def train_command(
    shards: Path = typer.Argument(..., help="A folder written by `spadekit prepare` (train and val splits)."),
    out: Path = typer.Option(..., "--out", help="Folder for segmenter.pt and metrics.jsonl."),
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
) -> None:
    """Train an smp segmenter on SHARDS' train split; val mIoU and pixel accuracy after every epoch."""
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
        workers=workers,
        seed=seed,
        device=device,
        force=force,
    )
    train_segmenter(job)
