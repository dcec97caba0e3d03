"""The layers point one way (DESIGN.md, Layout): cli -> command modules -> train / bench / synth -> nn, data,
registry, console, device; plugins reach spadekit through what it exports, and spadekit reaches plugins only
through the registry. The imports are read from the source (every `import`, at any depth), so a lazy import
inside a function counts too."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE, PLUGINS = REPO / "spadekit", REPO / "plugins"
# what may run training: the trainer itself, the commands, and the command modules that train or time it
MAY_IMPORT_TRAIN = ("train/", "cli/", "demo/", "perf.py", "ddp_scaling.py")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (absolute names), wherever the import statement stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _files(root: Path) -> list[tuple[str, set[str]]]:
    return [(path.relative_to(root).as_posix(), imported_modules(path)) for path in sorted(root.rglob("*.py"))]


def _importing(files, prefix: str) -> list[str]:
    return [name for name, modules in files if any(m == prefix or m.startswith(prefix + ".") for m in modules)]


def test_nothing_outside_the_cli_imports_it():
    offenders = [f"spadekit/{name}" for name in _importing(_files(CORE), "spadekit.cli") if not name.startswith("cli/")]
    offenders += [f"plugins/{name}" for name in _importing(_files(PLUGINS), "spadekit.cli")]
    assert offenders == []


def test_inference_synth_bench_data_nn_and_plugins_never_import_train():
    offenders = [f"spadekit/{name}" for name in _importing(_files(CORE), "spadekit.train")
                 if not name.startswith(MAY_IMPORT_TRAIN)]
    offenders += [f"plugins/{name}" for name in _importing(_files(PLUGINS), "spadekit.train")]
    assert offenders == []


def test_spadekit_reaches_plugins_only_through_the_registry():
    assert _importing(_files(CORE), "spadekit_plugins") == []


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_do_not_import_torch(args):
    code = ("import sys\nfrom spadekit.cli.main import run\ntry:\n    run(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "import json\nprint(json.dumps(sorted(m for m in ('torch', 'numpy', 'h5py') if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
