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


class InProcessCli:
    """`spadekit ARGS` run in this process through `spadekit.cli.main.run` (what the installed script calls),
    answered as a `subprocess.CompletedProcess` like `run_cli`'s: a case costs the command, not the ~2 s start-up
    of a Python with torch. `env` is set for the call only; the consoles are 200 columns wide, as run_cli's
    COLUMNS=200. The tests that must prove the installed command works end to end keep `run_cli`."""

    def __init__(self, capsys, monkeypatch):
        self.capsys, self.monkeypatch = capsys, monkeypatch

    def __call__(self, *args: str, env: dict[str, str] | None = None, check: bool = True):
        from spadekit import console as consoles
        from spadekit.cli import main

        self.capsys.readouterr()
        with self.monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            for console in (consoles.console, consoles.err_console):
                patch.setattr(console, "_width", 200)
            patch.setitem(main._state, "debug", False)
            try:
                main.run(list(args))
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        out = self.capsys.readouterr()
        proc = subprocess.CompletedProcess(["spadekit", *args], code, out.out, out.err)
        if check and code != 0:
            raise AssertionError(f"spadekit {' '.join(args)} failed ({code}):\n{out.out}\n{out.err}")
        return proc


@pytest.fixture()
def cli(capsys, monkeypatch) -> InProcessCli:
    """`cli("bench", run, ...)`: `run_cli`'s answer for an in-process run of the command."""
    return InProcessCli(capsys, monkeypatch)


def tiny_recipe(shards: Path, **overrides):
    """tests/test_train.py's TINY recipe (VAE SPADE, ngf 4) on `shards`."""
    from spadekit.config import load_recipe
    from tests.test_train import TINY

    return load_recipe(None, {**TINY, "data.shards": str(shards), **overrides})


@pytest.fixture(scope="session")
def tiny_run(toy_shards, tmp_path_factory) -> Path:
    """A 2-step run of the TINY recipe on `toy_shards`, trained once per session. Read-only: a test that changes
    it works on a copy (`shutil.copytree(tiny_run, tmp_path / "run")`)."""
    from spadekit.train.loop import TrainJob, train

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    train(TrainJob(tiny_recipe(toy_shards, **{"train.max_steps": 2}), run))
    return run
