"""`spadekit train RECIPE`: train a generator plugin, on one process or many."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.syntax import Syntax

from spadekit.cli.common import parse_sets
from spadekit.config import load_recipe
from spadekit.console import console, err_console


def train_command(
    recipe: Annotated[Path, typer.Argument(help="The recipe TOML file.")],
    gpus: Annotated[int, typer.Option("--gpus", min=1, help="Processes per node: one per GPU; on a machine "
                                      "without GPUs, that many CPU processes (gloo).")] = 1,
    nnodes: Annotated[int, typer.Option("--nnodes", min=1, help="Number of machines.")] = 1,
    node_rank: Annotated[int, typer.Option("--node-rank", min=0, help="This machine's rank.")] = 0,
    master_addr: Annotated[str, typer.Option("--master-addr", help="Address of the rank-0 machine.")] = "127.0.0.1",
    master_port: Annotated[int | None, typer.Option("--master-port", help="Rendezvous port.")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Run directory [default: runs/<recipe name>]")]
    = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --run-dir exactly.")] = False,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Override: --set train.max_steps=100.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and sizes; train nothing.")]
    = False,
) -> None:
    """Train the recipe's generator with the paper's objective; checkpoints, samples and metrics go to the run dir."""
    from spadekit.train.distributed import cpu_process_warning, plan_description

    loaded = load_recipe(recipe, parse_sets(sets))
    run_dir = run_dir or Path("runs") / recipe.stem
    warning = cpu_process_warning(gpus, nnodes)
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if dry_run:
        _print_dry_run(loaded, run_dir)
        return
    from spadekit.train.loop import TrainJob, train

    console.print(f"training {recipe} -> {run_dir} on {plan_description(gpus, nnodes)}", highlight=False)
    train(TrainJob(loaded, run_dir, resume), gpus, nnodes, node_rank, master_addr, master_port)


def _print_dry_run(recipe, run_dir: Path) -> None:
    if console.is_terminal:
        console.print(Syntax(recipe.resolved_toml(), "toml"))
    else:
        typer.echo(recipe.resolved_toml())
    if recipe.data.shards is None or not (Path(recipe.data.shards) / "manifest.json").is_file():
        console.print("(no prepared shards at data.shards: sizes need the dataset's label space)")
        return
    from spadekit.data.manifest import Manifest
    from spadekit.generator import build_on_meta, count_generator_parameters, count_parameters, forward_macs
    from spadekit.train.build import build_discriminator, generator_context

    context = generator_context(recipe, Manifest.load(recipe.data.shards).dataset)
    generator = build_on_meta(recipe.model.name, recipe.model.options, context)
    encoder = count_parameters(generator.encoder) if generator.encoder is not None else 0
    try:
        macs = f", {forward_macs(generator, context) / 1e9:.2f} GMACs per image"
    except Exception:  # a plugin whose forward cannot run on the meta device: the parameter count still stands
        macs = ""
    if recipe.loss.lambda_gan > 0:
        discriminator = f"discriminator {count_parameters(build_discriminator(recipe, context)) / 1e6:.2f}M"
    else:
        discriminator = "discriminator not trained (loss.lambda_gan = 0)"
    console.print(
        f"run dir {run_dir}; input channels {context.semantic_nc}; image {context.image_size[1]}x"
        f"{context.image_size[0]}; generator {recipe.model.name} {count_generator_parameters(generator) / 1e6:.2f}M "
        f"parameters (+ encoder {encoder / 1e6:.2f}M){macs}; {discriminator}",
        highlight=False,
    )
