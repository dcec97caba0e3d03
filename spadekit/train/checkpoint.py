"""Checkpoints: atomic saves, safe loads, the run directory's checkpoints/ layout, and RNG states."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_text

_STEP_FILE = re.compile(r"step_(\d{8,})\.pt")
LATEST = "latest.txt"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` so that `path` holds either the previous checkpoint or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint onto the CPU, unpickling only tensors and plain values (never code)."""
    path = Path(path)
    if not path.is_file():
        raise SpadekitError(f"Checkpoint {path} does not exist: check the path, or train a run that saves one.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SpadekitError(
            f"Checkpoint {path} cannot be read ({_first_line(exc)}): it is damaged or not a spadekit checkpoint; "
            "delete it to fall back to an earlier one, or save it again."
        ) from exc
    if not isinstance(state, dict):
        raise SpadekitError(
            f"Checkpoint {path} holds a {type(state).__name__}, not a dict of states: "
            "it was not written by spadekit; point to a checkpoint under RUN_DIR/checkpoints/."
        )
    return state


def _first_line(exc: Exception) -> str:
    """torch.load's messages run to many lines; the first says what went wrong."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}.pt"


def save_step_checkpoint(run_dir: Path, step: int, state: dict) -> Path:
    """Save the checkpoint of `step`, then point latest.txt at it (so latest.txt never names a partial file)."""
    path = checkpoint_path(run_dir, step)
    save_checkpoint(path, state)
    atomic_write_text(path.parent / LATEST, path.name + "\n")
    _fsync_dir(path.parent)
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint latest.txt names; if that file is gone, the highest-numbered step file; else None."""
    folder = Path(run_dir) / "checkpoints"
    pointer = folder / LATEST
    if pointer.is_file():
        named = folder / pointer.read_text().strip()
        if named.is_file():
            return named
    steps = _step_files(folder)
    return steps[-1] if steps else None


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete the oldest step files beyond the newest `keep`, sparing the one latest.txt names; return them."""
    steps = _step_files(Path(run_dir) / "checkpoints")
    latest = latest_checkpoint(run_dir)
    doomed = [p for p in steps[: max(len(steps) - keep, 0)] if p != latest]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def _step_files(folder: Path) -> list[Path]:
    """Step files sorted by step; temp files start with '.' and never match."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable: a crash after it must not bring back the old directory entry."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_states() -> dict:
    """Every RNG a training step draws from, as tensors and plain values so weights_only loading accepts them."""
    version, mt_state, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        "python": {"version": version, "state": torch.tensor(mt_state, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    """Undo rng_states(): draws after this repeat those made after the states were taken."""
    py = states["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    npy = states["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available() and "cuda" in states:
        # A run resumed on fewer devices restores the ones it has.
        for index, state in enumerate(states["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)
