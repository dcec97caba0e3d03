"""`spadekit data verify|show|export`: inspect prepared shards."""

from __future__ import annotations

from pathlib import Path

import typer

from spadekit.console import console, progress_bar
from spadekit.errors import SpadekitError

app = typer.Typer(help="Check, look at and export prepared shards.", no_args_is_help=True)


@app.command("verify")
def verify_command(shards: Path = typer.Argument(..., help="A folder written by `spadekit prepare`.")) -> None:
    """Check the schema, every checksum and every record; exit non-zero naming each damaged shard."""
    from spadekit.data.verify import verify

    damaged = []
    for check in verify(shards):
        if check.ok:
            console.print(f"[green]ok[/]      {check.file}", highlight=False)
        else:
            console.print(f"[red]DAMAGED[/] {check.file}: {check.problem}", highlight=False)
            damaged.append(check.file)
    if damaged:
        raise SpadekitError(
            f"{len(damaged)} damaged shard(s) in {shards}: {', '.join(damaged)}; "
            "re-create them with `spadekit prepare ... --resume` after deleting them and their .parts records."
        )
    console.print(f"[green]{shards} is sound.[/]")


@app.command("show")
def show_command(
    shards: Path = typer.Argument(..., help="A folder written by `spadekit prepare`."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    n: int = typer.Option(16, "--n", min=1, help="Number of samples (rows)."),
    split: str = typer.Option(None, "--split", help="Split to show (default: the first)."),
) -> None:
    """Write a PNG grid: image | coloured label | instance edges, one sample per row."""
    from spadekit.data.show import show_grid

    rows = show_grid(shards, out, split=split, n=n)
    console.print(f"wrote {out} ({rows} samples)")


@app.command("export")
def export_command(
    shards: Path = typer.Argument(..., help="A folder written by `spadekit prepare`."),
    out: Path = typer.Option(..., "--out", help="Folder for OUT/<split>/{images,labels,instances}/<key>.png."),
    split: str = typer.Option(None, "--split", help="Only this split (default: all)."),
) -> None:
    """Write the stored samples back to PNG files, pixel for pixel."""
    from spadekit.data.export import export, total_samples

    splits = [split] if split else None
    with progress_bar("samples") as progress:
        task = progress.add_task("exporting", total=total_samples(shards, splits))
        count = export(shards, out, splits, on_sample=lambda: progress.advance(task))
    console.print(f"wrote {count} samples under {out}")
