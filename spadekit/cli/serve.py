"""`spadekit serve RUN_DIR`: the painting page on a local web server."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from spadekit.console import console
from spadekit.errors import SpadekitError


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
    compile: Annotated[bool, typer.Option("--compile", help="For GPUs: torch.compile the generator with CUDA "
                                          "graphs, for faster paints after a slower first one per image size (on a "
                                          "CPU the default fast path is faster).")]
    = False,
) -> None:
    """Serve the painting page: paint labels, pick a style photo, see the photograph."""
    import uvicorn

    from spadekit.device import pick_device
    from spadekit.serve.app import create_app
    from spadekit.synthesis import Synthesizer

    with listening_socket(host, port) as sock:  # before the model loads: a busy port fails at once
        engine = Synthesizer.load(run, checkpoint, pick_device(device), precision,
                                   compile=compile)
        if compile and engine.device.type == "cpu":
            console.print("[yellow]--compile on a CPU:[/] the default fast path (window tables) paints faster here; "
                          "--compile is meant for GPUs.", highlight=False)
        console.print(f"run {run}: {engine.info.generator}, {engine.run.checkpoint.name}, {engine.precision} on "
                      f"{engine.device}; open http://{host}:{port}/ (Ctrl+C stops)", highlight=False)
        config = uvicorn.Config(create_app(engine), host=host, port=port, log_level="warning")
        uvicorn.Server(config).run(sockets=[sock])


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), as uvicorn binds (SO_REUSEADDR); a busy port, an address not of this
    machine or a privileged port is one sentence, instead of uvicorn's log line and exit 3."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as err:
        raise SpadekitError(f"--host {host} is not an address of this machine ({err.strerror}); give an IP "
                            "address such as 127.0.0.1 or 0.0.0.0.") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise SpadekitError(f"Cannot listen on {host}:{port}: {_why(err)}.") from None
    return sock


def _why(err: OSError) -> str:
    if err.errno == errno.EADDRINUSE:
        return "the port is in use (another server?); stop that one or pick another --port"
    if err.errno == errno.EACCES:
        return "ports below 1024 need administrator rights; pick a --port of 1024 or more"
    if err.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this machine's; give 127.0.0.1, 0.0.0.0 or one of its addresses"
    return f"{err.strerror}; pick another --host or --port"
