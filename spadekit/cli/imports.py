"""`spadekit import`: turn checkpoints made by other code into spadekit run directories."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from spadekit.console import console

if TYPE_CHECKING:
    from spadekit.nvlabs import ImportSummary
    from spadekit.oasis import OasisImportSummary

app = typer.Typer(help="Import checkpoints made by other code as spadekit run directories.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Import checkpoints made by other code as spadekit run directories."""


@app.command("nvlabs")
def nvlabs_command(
    ckpt_dir: Annotated[Path, typer.Argument(
        help="Folder with the official {which}_net_G.pth (and _net_D, _net_E, and the opt.txt training wrote).")],
    dataset: Annotated[str, typer.Option(
        "--dataset", help="The official label space: coco, ade20k or cityscapes (and its default geometry, "
        "which the folder's opt.txt overrides).")],
    out: Annotated[Path, typer.Option("--out", help="The run directory to create (new or empty).")],
    which: Annotated[str, typer.Option("--which", help="Which epoch's files: latest, 40, ...")] = "latest",
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out.")] = False,
) -> None:
    """Import an official NVlabs/SPADE checkpoint (e.g. checkpoints/coco_pretrained) as a run directory.

    The folder's opt.txt, when training left one there, decides the image size and upsampling schedule and is
    checked against the weights; opt.pkl is never read."""
    from spadekit.nvlabs import import_nvlabs

    print_summary(import_nvlabs(ckpt_dir, dataset, out, which=which, force=force))


@app.command("oasis")
def oasis_command(
    ckpt_dir: Annotated[Path, typer.Argument(
        help="The OASIS experiment folder (e.g. checkpoints/oasis_ade20k_pretrained, holding models/ and opt.txt) "
        "or its models/ folder with <iter>_G.pth, _EMA.pth and _D.pth.")],
    dataset: Annotated[str, typer.Option(
        "--dataset", help="OASIS's --dataset_mode the checkpoint was trained with: ade20k, cityscapes or coco.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="The run directory to create (new or empty) [default: runs/<experiment folder name>].")] = None,
    iteration: Annotated[str, typer.Option(
        "--iter", help="Which files: latest (the latest_ files, else the highest iteration), best, or a number.")
    ] = "latest",
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out.")] = False,
) -> None:
    """Import a checkpoint of the reference OASIS code (boschresearch/OASIS) as a run directory.

    Generator, EMA generator and discriminator are mapped key for key (label channels reordered to spadekit's
    layout); the options are read off the weights and checked against the folder's opt.txt, if any (opt.pkl is
    never read)."""
    from spadekit.oasis import import_oasis

    print_oasis_summary(import_oasis(ckpt_dir, dataset, out, which=iteration, force=force))


def print_oasis_summary(summary: OasisImportSummary) -> None:
    options = summary.options
    at = f" (iteration {summary.iteration_number})" if summary.iteration_number is not None else ""
    _print_files(f"OASIS {summary.dataset}, {summary.iteration} files{at} -> {summary.run_dir}", summary.files)
    height, width = summary.image_size
    noise = f"3D noise z_dim {options['z_dim']}" if options["noise_3d"] else "no 3D noise"
    console.print(f"generator: ngf {options['ngf']}, {options['num_res_blocks']} blocks, {noise}, {options['norm']} "
                  f"SPADE norm, {width}x{height} images; discriminator channels_D {options['channels_D']}",
                  highlight=False)
    if summary.opt_file is not None:
        console.print(f"options checked against {escape(str(summary.opt_file))}", highlight=False)
    for note in summary.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    run = escape(str(summary.run_dir))
    console.print(f"[green]done:[/] {run}/run.json, checkpoints/step_00000000.pt and config.toml written; next:",
                  highlight=False)
    console.print(f"  synthesize: spadekit synth MASK.png --run {run} --n 4", highlight=False)
    console.print(f"  fine-tune: spadekit train {run}/config.toml --set data.shards=SHARDS --run-dir NEW_RUN_DIR",
                  highlight=False)


def _print_files(title: str, files) -> None:
    """The imported files: network, path, keys and parameters, one row each."""
    table = Table("network", "file", "keys", "parameters", title=escape(title))
    for f in files:
        table.add_row(f.role, escape(str(f.path)), str(f.keys), f"{f.parameters / 1e6:.2f}M")
    console.print(table)


def print_summary(summary: ImportSummary) -> None:
    options = summary.options
    shape = "VAE" if options.get("use_vae") else "noise input" if options.get("input") == "noise" else "label map input"
    _print_files(f"official SPADE {summary.dataset} -> {summary.run_dir}", summary.files)
    height, width = summary.image_size
    console.print(f"generator: ngf {options['ngf']}, {options['num_upsampling_layers']} upsampling, {shape}, "
                  f"{options['norm']} SPADE norm, {width}x{height} images", highlight=False)
    if summary.opt_file is not None:
        taken = ", ".join(f"{name} {value}" for name, value in summary.from_opt.items())
        console.print(f"from {escape(str(summary.opt_file))}: {escape(taken)}", highlight=False, soft_wrap=True)
    if summary.discriminator:
        d = summary.discriminator
        console.print(f"discriminator: {d['num_D']} scales, {d['n_layers']} layers, ndf {d['ndf']}, {d['norm']}",
                      highlight=False)
    for note in summary.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    run = escape(str(summary.run_dir))
    console.print(f"[green]done:[/] {run}/run.json, checkpoints/step_00000000.pt and config.toml written; next:",
                  highlight=False)
    console.print(f"  fine-tune: spadekit train {run}/config.toml --set data.shards=SHARDS --run-dir NEW_RUN_DIR",
                  highlight=False)
