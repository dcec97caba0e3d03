"""Checkpoint files: atomic saves, safe and checked loads, and the run directory's checkpoints/ layout.

Every checkpoint spadekit writes carries the sha256 of its contents (key `CHECKSUM`) and every load verifies
it, so that a bit flipped on a disk or in a copy is refused instead of synthesizing wrong images; checkpoints
written before checksums existed load unchecked. A checkpoint edited by hand must be saved again with
`save_checkpoint`, which recomputes the checksum.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import torch

from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_file, atomic_write_text, remove_stale_temps
from spadekit.weights import load_weights_only

_STEP_FILE = re.compile(r"step_(\d{8,})\.pt")
# the temp files of atomic writes into checkpoints/ (save_checkpoint's and fileio.atomic_write_bytes' naming)
_TEMP_FILE = re.compile(r"\.(?:step_\d{8,}\.pt|latest\.txt)\.tmp(?P<pid>[1-9]\d*)")
LATEST = "latest.txt"
CHECKSUM = "checksum_sha256"  # the key holding state_sha256 of the rest of the checkpoint
_WRITE_FIX = "free space on its disk or make its folder writable, then run the command again (train: with --resume)"


class CheckpointWriteError(SpadekitError, OSError):
    """A checkpoint that could not be written (disk full, read-only folder): one sentence for the user, and
    still an OSError for callers that handle write failures."""


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` and its checksum so that `path` holds either the previous checkpoint or the whole new one.

    A failed write (disk full, read-only folder) removes its temp file and is a CheckpointWriteError naming `path`.
    """
    path = Path(path)
    state = {**state, CHECKSUM: state_sha256(state)}
    sink = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as f:
            sink = _Sink(f)
            torch.save(state, sink)
        _fsync_dir(path.parent)
    except BaseException as exc:
        cause = exc if isinstance(exc, OSError) else getattr(sink, "error", None)
        if cause is None:
            raise
        reason = cause.strerror or cause
        raise CheckpointWriteError(f"Cannot write checkpoint {path} ({reason}); {_WRITE_FIX}.") from exc


class _Sink:
    """A file's write() that remembers the OSError it raised: torch.save turns that into a RuntimeError about
    stream positions, which would hide "No space left on device"."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        return self._recording(self.file.write, data)

    def flush(self) -> None:
        self._recording(self.file.flush)

    def _recording(self, call, *args):
        try:
            return call(*args)
        except OSError as err:
            self.error = err
            raise


def state_sha256(state: dict) -> str:
    """sha256 of everything in a checkpoint but its checksum: each tensor's dtype, shape and bytes and each
    plain value, in key order, so that a state and the same state saved and loaded again give one digest."""
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in state.items() if key != CHECKSUM})
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)};".encode())
        for key in sorted(value, key=repr):
            digest.update(f"{key!r}:".encode())
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):  # a tuple may come back as a list: both hash alike
        digest.update(f"L{len(value)};".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint onto the CPU, unpickling only tensors and plain values (never code), and verify its
    checksum."""
    path = Path(path)
    if not path.is_file():
        raise SpadekitError(f"Checkpoint {path} does not exist: check the path, or train a run that saves one.")
    fix = "it is damaged or not a spadekit checkpoint: delete it to fall back to an earlier one, or save it again"
    state = load_weights_only(path, f"Checkpoint {path}", fix)
    if not isinstance(state, dict):
        raise SpadekitError(
            f"Checkpoint {path} holds a {type(state).__name__}, not a dict of states: "
            "it was not written by spadekit; point to a checkpoint under RUN_DIR/checkpoints/."
        )
    verify_checksum(state, path)
    return state


def verify_checksum(state: dict, path: Path, what: str = "Checkpoint") -> None:
    """Pop the checksum saved in `state` and refuse the file if its contents no longer match it (files written
    before checksums existed carry none and pass)."""
    saved = state.pop(CHECKSUM, None)
    if saved is not None and saved != state_sha256(state):
        raise SpadekitError(
            f"{what} {path} is damaged: its contents do not match the checksum saved in it (a bit changed on "
            "disk or in a copy); delete it to fall back to an earlier one, or copy it again from a good source."
        )


def remove_stale_temps_of(run_dir: Path) -> list[Path]:
    """Delete what checkpoint writes killed mid-way (kill -9, power loss) left in RUN_DIR/checkpoints/: only
    temp files of our own naming whose writing process is gone."""
    return remove_stale_temps(Path(run_dir) / "checkpoints", _TEMP_FILE)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}.pt"


def save_step_checkpoint(run_dir: Path, step: int, state: dict) -> Path:
    """Save the checkpoint of `step`, then point latest.txt at it (so latest.txt never names a partial file)."""
    path = checkpoint_path(run_dir, step)
    save_checkpoint(path, state)
    pointer = path.parent / LATEST
    try:
        atomic_write_text(pointer, path.name + "\n")
        _fsync_dir(path.parent)
    except OSError as err:
        raise CheckpointWriteError(f"Cannot write {pointer} ({err.strerror or err}); {_WRITE_FIX}.") from err
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
