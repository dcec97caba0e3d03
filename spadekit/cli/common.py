"""Small pieces shared by the command modules: `--set` parsing and output-path checks (the console and the
progress bar are `spadekit.console`, devices `spadekit.device`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from spadekit.errors import SpadekitError
from spadekit.toml import tomllib


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
