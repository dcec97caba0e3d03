"""`spadekit plugins`: the installed plugins of every group."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from spadekit import registry
from spadekit.cli.common import console


def plugins_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List generator, dataset and segmenter plugins with their summaries and distributions."""
    rows = []
    for kind in registry.GROUPS:
        for entry in registry.entries(kind).values():
            rows.append(
                {
                    "group": registry.GROUPS[kind],
                    "name": entry.name,
                    "summary": entry.load().summary,
                    "distribution": entry.distribution,
                    "version": entry.version,
                }
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("group", "name", "summary", "distribution", title="spadekit plugins")
    for row in rows:
        table.add_row(row["group"], row["name"], row["summary"], f"{row['distribution']} {row['version']}")
    console.print(table)
