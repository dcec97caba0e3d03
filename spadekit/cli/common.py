"""Small pieces shared by the command modules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from spadekit.errors import SpadekitError
from spadekit.toml import tomllib

if TYPE_CHECKING:
    import torch

console = Console()
err_console = Console(stderr=True)


def warn(message: str) -> None:
    """A one-line warning on stderr: the command goes on."""
    from rich.markup import escape

    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def pick_device(device: str | None) -> torch.device:
    """The --device flag's torch.device: as given, else cuda when a GPU is available, else cpu."""
    import torch

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def parse_value(text: str) -> Any:
    """A `--set` value as TOML if it parses (64, 0.5, true, [1, 2], "x"), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`["a.b=1", "c=x"]` -> `{"a.b": 1, "c": "x"}`; a malformed item is a user error."""
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpadekitError(f"--set {item!r} is not of the form key=value; write e.g. --set size=128.")
        result[key.strip()] = parse_value(value.strip())
    return result


def check_output(path: Path, flag: str, folder: bool = False) -> None:
    """Refuse an output path that cannot be written, before the command's work: an error found only when the
    results are written would waste a whole benchmark. A missing folder is fine (it is created on writing)."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        kind, want = ("a file", "a folder") if folder else ("a folder", "a file")
        raise SpadekitError(f"{flag} {path} is {kind}; name {want} (or move it away).")
    nearest = path if folder and path.is_dir() else path.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise SpadekitError(f"{flag} {path} cannot be written: {nearest} is a file, not a folder; choose another "
                            "path.")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise SpadekitError(f"{flag} {path} cannot be written: folder {nearest} is not writable (permissions or a "
                            "read-only disk); choose another path.")


class RateColumn(ProgressColumn):
    """Items per second, or a dash before the first measurement."""

    def __init__(self, unit: str = "it"):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-" if speed is None else f"{speed:.1f} {self.unit}/s", style="progress.data.speed")


def progress_bar(unit: str = "it") -> Progress:
    """The one progress style of every long step: description, bar, count, rate and ETA."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit))
    return Progress(*columns, TimeRemainingColumn(), console=console)
