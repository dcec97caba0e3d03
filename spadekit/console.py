"""The terminal: one console for results, one for warnings and errors, and the one progress style.

Core code (prepare, train, bench, segmenter training) reports progress through `progress`, the only
mechanism: a context manager that shows a rich bar (description, bar, count, rate, ETA) and yields the
function that advances it. It lives below everything that prints, so nothing outside `spadekit/cli/` imports
the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def warn(message: str) -> None:
    """A one-line warning on stderr: the command goes on."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


class RateColumn(ProgressColumn):
    """Items per second, or a dash before the first measurement."""

    def __init__(self, unit: str = "it"):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-" if speed is None else f"{speed:.1f} {self.unit}/s", style="progress.data.speed")


def progress_bar(unit: str = "it") -> Progress:
    """The one progress style of every long step: description, bar, count, rate and ETA (several tasks)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit))
    return Progress(*columns, TimeRemainingColumn(), console=console)


@contextmanager
def progress(description: str, total: int | None, unit: str = "it") -> Iterator[Callable[[int], None]]:
    """Show one bar while the block runs; yields `advance(n)`."""
    with progress_bar(unit) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
