"""`spadekit demo`: prepare, segmenter, train, bench, synth and a report, on toyscapes, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spadekit.console import console


def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for everything the demo makes.")] = Path("demo"),
    minutes: Annotated[float, typer.Option("--minutes", min=0.1, help="SPADE's training budget; the other "
                                           "steps add about 1.5 minutes on 2 CPU cores.")] = 8.0,
) -> None:
    """The whole pipeline on the built-in toyscapes data: data, segmenter, SPADE, benchmark, synthesis and a
    report (OUT/report.html). Re-running it skips the finished steps."""
    from spadekit.demo.pipeline import DemoSettings, run_demo

    report = run_demo(out, DemoSettings(minutes=minutes),
                      say=lambda line: console.print(f"[bold]{line}[/]", highlight=False))
    console.print(f"done: {report} (and report.md); next: spadekit serve {out / 'run'}", highlight=False)
