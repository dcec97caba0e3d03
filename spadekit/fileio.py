"""Atomic file writes: a reader sees the old file or the whole new one, never half of it."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A temp file beside `path` to write into; when the block ends it is fsynced and renamed over `path`, and
    when the block fails it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """spadekit's cache folder: $SPADEKIT_CACHE, else ~/.cache/spadekit."""
    return Path(os.environ.get("SPADEKIT_CACHE") or Path.home() / ".cache" / "spadekit").expanduser()


def remove_stale_temps(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Delete the temp files in `folder` that atomic writes killed mid-way (kill -9, power loss) left, and return them.

    Only files whose whole name `pattern` matches are touched, and only when the process its `pid` group names
    is gone or is this one (whose own writes are over when it calls this): a live writer's file is kept.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [path for path in sorted(folder.iterdir()) if (match := pattern.fullmatch(path.name)) and path.is_file()
             and not _running_elsewhere(int(match["pid"]))]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _running_elsewhere(pid: int) -> bool:
    """Whether another process with this id is running now (signal 0 checks without signalling)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; a number too large to be a process id
        return False
    except PermissionError:  # another user's process
        return True
    return True
