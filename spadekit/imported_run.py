"""Run directories made from checkpoints of other code (`spadekit import nvlabs`, `spadekit import oasis`).

An imported run directory holds run.json (`RunInfo`), a recipe for fine-tuning (`config.toml`) and one
weights-only step-0 checkpoint; it appears complete or not at all (written in a staging folder beside it,
then renamed into place), and a refused import changes nothing on disk.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from spadekit.checkpoints import save_step_checkpoint
from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_text
from spadekit.run_info import RunInfo

RECIPE_FILE = "config.toml"


def zero_missing_batch_counters(expected: dict, mapped: dict, where: str, cause: str = "") -> str | None:
    """Set every BatchNorm counter (`num_batches_tracked`) of `expected` that the reference state dict `mapped`
    lacks to 0, in place (inference does not read it); the note for the user, or None when none was missing."""
    counters = [key for key in expected if key.endswith("num_batches_tracked") and key not in mapped]
    for key in counters:
        mapped[key] = torch.zeros((), dtype=torch.long)
    if not counters:
        return None
    return f"{where}: {len(counters)} BatchNorm layers lack num_batches_tracked{cause}; set to 0, which inference " \
           "does not use"


def read_opt_text(path: Path) -> str | None:
    """A reference checkpoint folder's opt.txt as text (bytes that are not UTF-8 replaced: no option an importer
    reads can hold them), or None when there is none; unreadable is one sentence."""
    if not path.is_file():
        return None
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as err:
        raise SpadekitError(f"{path} cannot be read ({err.strerror or err}); check its permissions.") from None


def check_out(out: Path, ckpt_dir: Path, force: bool) -> None:
    """Refuse an --out that is a file, holds the checkpoints being imported, or is not empty (unless `force`)."""
    if out.exists() and not out.is_dir():
        raise SpadekitError(f"--out {out} is a file; give a folder for the run directory.")
    source = ckpt_dir.resolve()
    if out.resolve() == source or out.resolve() in source.parents:
        raise SpadekitError(f"--out {out} holds the checkpoints being imported; give another folder.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SpadekitError(f"--out {out} is not empty; give a new folder, or pass --force to replace it.")


def write_run(out: Path, info: RunInfo, recipe_text: str, checkpoint: dict[str, Any],
              save: Callable[[Path, int, dict], Any] = save_step_checkpoint) -> None:
    """run.json, the fine-tuning recipe and the step-0 checkpoint (written by `save`), published at once."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.importing-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        info.save(staging)
        atomic_write_text(staging / RECIPE_FILE, recipe_text)
        save(staging, 0, checkpoint)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish(staging: Path, out: Path) -> None:
    """Move the finished run directory into place; a replaced one is deleted only once the new one is there."""
    if not out.exists():
        os.replace(staging, out)
        return
    replaced = out.with_name(f".{out.name}.replaced-{os.getpid()}")
    os.replace(out, replaced)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(replaced, out)
        raise
    shutil.rmtree(replaced, ignore_errors=True)
