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
    with their parameter counts and GMACs per image (default options, COCO-Stuff and ADE20K label spaces at
    256x256, batch 1)."""
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
                row["gmacs"] = paper_gmacs(entry.name)
            rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("group", "name", "summary", "distribution", "parameters (COCO-Stuff / ADE20K, 256 px)",
                  "GMACs", title="spadekit plugins")
    for row in rows:
        sizes = " / ".join(_millions(v) for v in row["parameters"].values()) if "parameters" in row else ""
        macs = " / ".join(_gmacs(v) for v in row["gmacs"].values()) if "gmacs" in row else ""
        table.add_row(row["group"], row["name"], row["summary"], f"{row['distribution']} {row['version']}", sizes,
                      macs)
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


def paper_gmacs(name: str) -> dict[str, float | None]:
    """Multiply-accumulates (in billions) of one forward at batch 1 with default options in each of the paper's
    label spaces (`spadekit.generator.generator_macs`); None where the plugin cannot be counted there."""
    from spadekit.generator import PAPER_CONTEXTS, generator_macs

    gmacs: dict[str, float | None] = {}
    for dataset, context in PAPER_CONTEXTS.items():
        try:
            gmacs[dataset] = round(generator_macs(name, {}, context) / 1e9, 3)
        except Exception:  # a third-party forward may not run on the meta device; the listing goes on
            gmacs[dataset] = None
    return gmacs


def _gmacs(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def _millions(count: int | None) -> str:
    return "?" if count is None else f"{count / 1e6:.1f}M"
