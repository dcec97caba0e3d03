"""What a run reports: metrics.jsonl, TensorBoard scalars and images, and sample grids under samples/."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from spadekit.fileio import atomic_write_text
from spadekit.imageio import save_png
from spadekit.images import sample_grid


class RunLogger:
    """Writes the run's logs on the main rank; on other ranks (enabled=False) every method does nothing."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int | None = None):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._metrics = None
        self._writer = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self.truncate_after(resume_step)
        # Imported here: tensorboard takes seconds to import and only the main rank needs it.
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resume_step is None else resume_step + 1
        self._writer = SummaryWriter(self.run_dir / "tb", purge_step=purge)

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Append one JSON line {"step": step, **metrics} and the same scalars to TensorBoard."""
        if not self.enabled:
            return
        values = {name: float(value) for name, value in metrics.items()}
        if self._metrics is None:
            # Held open across calls (closed by close()): one open per logged step would be wasteful.
            self._metrics = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115
        self._metrics.write(json.dumps({"step": step, **values}) + "\n")
        self._metrics.flush()  # a crash loses at most the line being written
        for name, value in values.items():
            self._writer.add_scalar(name, value, step)

    def truncate_after(self, step: int) -> None:
        """Drop metric lines after `step` (and a torn last line), as if the run had never gone past it."""
        if not self.enabled or not self.metrics_path.is_file():
            return
        self._close_metrics()  # the rewrite replaces the file; an open handle would keep writing to the old one
        kept = [line for line in self.metrics_path.read_text(encoding="utf-8").splitlines() if _step_of(line) <= step]
        atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    def save_samples(self, step: int, label_rgb: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> Path | None:
        """Write samples/step_XXXXXXXX.png, one row per sample: coloured label | generated | real."""
        if not self.enabled:
            return None
        grid = sample_grid(label_rgb, fake, real)
        path = self.run_dir / "samples" / f"step_{step:08d}.png"
        save_png(path, grid.permute(1, 2, 0).numpy())
        self._writer.add_image("samples", grid, step)
        return path

    def close(self) -> None:
        if not self.enabled:
            return
        self._close_metrics()
        self._writer.close()

    def _close_metrics(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None


def _step_of(line: str) -> float:
    """The step of a metrics line; a line cut short by a crash counts as after every step."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")
