"""`spadekit prepare DATASET`: convert a dataset into HDF5 shards."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from spadekit.cli.common import parse_sets
from spadekit.console import console, warn

if TYPE_CHECKING:
    from spadekit.data.prepare import PrepareSummary


def prepare_command(
    dataset: str = typer.Argument(..., help="Dataset plugin: toyscapes, cityscapes, ... (see `spadekit plugins`)."),
    out: Path = typer.Option(..., "--out", help="Folder for the shards (new or empty, or resumed)."),
    src: Path = typer.Option(None, "--src", help="The dataset's root folder (not needed for toyscapes)."),
    splits: str = typer.Option(None, "--splits", help="Comma-separated splits, e.g. train,val (default: all)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes that read and convert samples."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted preparation in --out."),
    shard_index: int = typer.Option(0, "--shard-index", min=0, help="This part of a split job (0-based)."),
    num_shards: int = typer.Option(1, "--num-shards", min=1, help="Number of parts of a split job."),
    sets: list[str] = typer.Option(None, "--set", help="key=value: dataset options, shard_size, resize."),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first unusable source file instead of skipping it."
    ),
) -> None:
    """Convert DATASET into shards under --out; re-run with --resume after an interruption."""
    from spadekit.data.prepare import prepare
    from spadekit.data.workers import cap_workers

    workers = cap_workers(workers, "--workers", warn=warn)
    summary = prepare(
        dataset,
        out,
        src=src,
        splits=[s.strip() for s in splits.split(",")] if splits else None,
        settings=parse_sets(sets),
        workers=workers,
        resume=resume,
        shard_index=shard_index,
        num_shards=num_shards,
        progress=True,
        strict=strict,
    )
    _print_summary(summary)


def _print_summary(summary: PrepareSummary) -> None:
    facts = summary.facts
    table = Table("split", "samples", "shards", "classes seen", "skipped", title=f"{facts.name} -> {summary.out}")
    for name, part in summary.splits.items():
        seen = f"{len(part.classes_seen)} of {facts.label_nc}"
        table.add_row(name, str(part.samples), f"{part.shards_done}/{part.shards_total}", seen, str(len(part.skipped)))
    console.print(table)
    for line in summary.notes:
        console.print(f"  {line}", highlight=False)
    for name, part in summary.splits.items():
        for key, reason in part.skipped[:20]:
            console.print(f"  skipped {name}/{key}: {reason}", highlight=False)
        if len(part.skipped) > 20:
            console.print(f"  ... and {len(part.skipped) - 20} more skipped in {name}")
    if summary.complete:
        console.print(f"[green]done:[/] {summary.out}/manifest.json written; check it with `spadekit data verify`.")
    else:
        console.print(
            "[yellow]partial:[/] this part's shards are written; the manifest is written when all parts are "
            "done (run the remaining parts, or `prepare ... --resume` without --shard-index)."
        )
