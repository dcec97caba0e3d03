"""A failed write (disk full, read-only folder, a file where a folder should be) as one sentence with its fix.

The OSError alone names the path but not what to do next; for prepare that is "free space, then --resume",
which only the writer knows. The original error stays attached (shown with --debug).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spadekit.errors import SpadekitError


def first_line(err: BaseException) -> str:
    """The first line of an error's message (h5py's and pydantic's run to several), or its type's name."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def os_reason(err: OSError) -> str:
    """The OS's words for an error ("No space left on device"), else the first line of h5py's message."""
    return err.strerror or first_line(err)


@contextmanager
def writing(path: Path, fix: str) -> Iterator[None]:
    """Raise an OSError of the block as `Cannot write PATH (reason); FIX.`"""
    try:
        yield
    except OSError as err:
        raise SpadekitError(f"Cannot write {path} ({os_reason(err)}); {fix}.") from err


def first_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (what a failed command must remove), or None."""
    path = Path(path)
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def file_in_the_way(path: Path) -> Path | None:
    """The first of `path`'s parents that exists but is a file (so no folder can be made there), or None."""
    for parent in reversed(Path(path).parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None
