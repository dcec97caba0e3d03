"""`spadekit serve RUN_DIR`: the painting page on a local web server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spadekit.cli.common import console, pick_device


def serve_command(
    run: Annotated[Path, typer.Argument(help="Run directory (made by `spadekit train`, `spadekit demo` or "
                                        "`spadekit import nvlabs`).")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 7860,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")]
    = "127.0.0.1",
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="A checkpoint of the run "
                                                    "[default: the latest].")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda [default: cuda if available]")] = None,
    precision: Annotated[str, typer.Option("--precision", help="auto (bf16 where native), fp32, bf16 or fp16.")]
    = "auto",
) -> None:
    """Serve the painting page: paint labels, pick a style photo, see the photograph."""
    import uvicorn

    from spadekit.serve.app import create_app
    from spadekit.synth import Painter

    painter = Painter(run, checkpoint, pick_device(device), precision)
    console.print(f"run {run}: {painter.info.generator}, {painter.checkpoint.name}, {painter.precision} on "
                  f"{painter.device}; open http://{host}:{port}/ (Ctrl+C stops)", highlight=False)
    uvicorn.run(create_app(painter), host=host, port=port, log_level="warning")
