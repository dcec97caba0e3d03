"""`spadekit recipe`: inspect training recipes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.syntax import Syntax

from spadekit.cli.common import parse_sets
from spadekit.config import load_recipe
from spadekit.console import console

app = typer.Typer(help="Inspect training recipes.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Inspect training recipes (TOML: [data] [model] [discriminator] [loss] [optim] [train] [bench])."""


@app.command("show")
def show_command(
    recipe: Annotated[Path, typer.Argument(help="The recipe TOML file.")],
    sets: Annotated[list[str] | None, typer.Option("--set", help="Override: --set train.seed=3.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of TOML.")] = False,
) -> None:
    """Print the resolved configuration: defaults < recipe < SPADEKIT_* environment < --set."""
    loaded = load_recipe(recipe, parse_sets(sets))
    if as_json:
        typer.echo(json.dumps(loaded.model_dump(mode="json"), indent=2))
    elif console.is_terminal:
        console.print(Syntax(loaded.resolved_toml(), "toml"))
    else:
        typer.echo(loaded.resolved_toml())
