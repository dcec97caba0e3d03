"""Shared fixtures: a clean plugin environment and a small prepared toyscapes dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_user_plugins(monkeypatch):
    """Tests never pick up plugins registered in the developer's environment by accident."""
    monkeypatch.delenv("SPADEKIT_PLUGINS", raising=False)


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed `spadekit` command line in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "spadekit.cli.main", *args], capture_output=True, text=True, env=full_env
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"spadekit {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


TOY_SETTINGS = {"num_train": 24, "num_val": 8, "size": 64, "shard_size": 8}


@pytest.fixture(scope="session")
def toy_shards(tmp_path_factory) -> Path:
    """toyscapes, 24 train + 8 val images of 64x64 in shards of 8; prepared once per test session."""
    from spadekit.data.prepare import prepare

    out = tmp_path_factory.mktemp("toy") / "shards"
    prepare("toyscapes", out, settings=dict(TOY_SETTINGS))
    return out
