"""The plugin boundary: first-party plugins reach spadekit only through `spadekit.plugin`, whose names all
resolve and whose spec names load without torch; generators and trainable segmenters are checked against
their Protocols."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from spadekit import plugin
from spadekit.errors import SpadekitError
from tests.conftest import REPO

PLUGINS = REPO / "plugins"


def _spadekit_imports(path: Path) -> set[str]:
    """The spadekit modules a file imports (not spadekit_plugins), wherever the import statement stands."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name == "spadekit" or name.startswith("spadekit.")}


def test_first_party_plugins_import_spadekit_only_through_the_plugin_api():
    offenders = {
        path.relative_to(REPO).as_posix(): sorted(modules - {"spadekit.plugin"})
        for path in sorted(PLUGINS.rglob("*.py"))
        if (modules := _spadekit_imports(path)) - {"spadekit.plugin"}
    }
    assert offenders == {}


@pytest.mark.parametrize("name", plugin.__all__)
def test_every_plugin_api_name_resolves(name):
    assert getattr(plugin, name) is not None


def test_spec_modules_load_the_plugin_api_without_torch():
    specs = sorted(path.parent.name for path in PLUGINS.glob("*/spec.py"))
    code = "import sys\n" + "".join(f"import spadekit_plugins.{name}.spec\n" for name in specs) + (
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_a_generator_outside_the_contract_is_refused(monkeypatch):
    from spadekit.generator import GeneratorContext, build_generator
    from spadekit.nn.semantics import LabelSpace

    monkeypatch.setenv("SPADEKIT_PLUGINS", "toygen=tests.fake_generator:spec")  # its factory returns None
    with pytest.raises(SpadekitError, match="'toygen' returned NoneType without nn.Module, encoder, z_dim, forward"):
        build_generator("toygen", {}, GeneratorContext(LabelSpace(3, dontcare=False, use_instance=False), 64))


def test_first_party_generators_are_generators():
    from spadekit.generator import Generator, GeneratorContext, build_on_meta
    from spadekit.nn.semantics import LabelSpace

    context = GeneratorContext(LabelSpace(3, dontcare=False, use_instance=False), 256)
    for name in ("spade", "pix2pixhd", "crn", "clade", "oasis"):
        assert isinstance(build_on_meta(name, {}, context), Generator)
