"""`spadekit plugins`: the installed plugins of every group, with each generator's size."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from spadekit import registry
from spadekit.console import console


def plugins_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List generator, dataset and segmenter plugins with their summaries and distributions; generators also
    with their parameter counts (default options, COCO-Stuff and ADE20K label spaces at 256x256)."""
    rows = []
    for kind in registry.GROUPS:
        for entry in registry.entries(kind).values():
            row = {
                "group": registry.GROUPS[kind],
                "name": entry.name,
                "summary": entry.load().summary,
                "distribution": entry.distribution,
                "version": entry.version,
            }
            if kind == "generators":
                row["parameters"] = paper_parameter_counts(entry.name)
            rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("group", "name", "summary", "distribution", "parameters (COCO-Stuff / ADE20K, 256 px)",
                  title="spadekit plugins")
    for row in rows:
        sizes = " / ".join(_millions(v) for v in row["parameters"].values()) if "parameters" in row else ""
        table.add_row(row["group"], row["name"], row["summary"], f"{row['distribution']} {row['version']}", sizes)
    console.print(table)


def paper_parameter_counts(name: str) -> dict[str, int | None]:
    """The generator's parameters with default options for each of the paper's label spaces; None where the
    plugin cannot be built there (on the meta device, or for that image size)."""
    from spadekit.generator import PAPER_CONTEXTS, parameter_count

    counts: dict[str, int | None] = {}
    for dataset, context in PAPER_CONTEXTS.items():
        try:
            counts[dataset] = parameter_count(name, {}, context)
        except Exception:  # a third-party plugin may refuse the meta device or this size; the listing goes on
            counts[dataset] = None
    return counts


def _millions(count: int | None) -> str:
    return "?" if count is None else f"{count / 1e6:.1f}M"
