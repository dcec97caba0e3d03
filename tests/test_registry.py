"""Plugin discovery: entry points, SPADEKIT_PLUGINS, lazy imports, helpful unknown names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from spadekit import registry
from spadekit.errors import SpadekitError
from tests.conftest import REPO


def test_builtin_dataset_is_found_through_its_entry_point():
    entry = registry.entries("datasets")["toyscapes"]
    assert entry.target == "spadekit_plugins.toyscapes.spec:spec"
    assert entry.distribution == "spadekit"
    assert registry.get("datasets", "toyscapes").name == "toyscapes"


def test_listing_names_imports_no_plugin_code():
    code = (
        "import sys; from spadekit import registry; "
        "names = [n for k in registry.GROUPS for n in registry.names(k)]; "
        "assert 'toyscapes' in names, names; "
        "print(sorted(m for m in sys.modules if m.startswith('spadekit_plugins') or m in ('torch', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_environment_variable_registers_a_plugin_without_installing_it(monkeypatch):
    monkeypatch.setenv("SPADEKIT_PLUGINS", "messy=tests.fixture_plugins:messy")
    entry = registry.entries("datasets")["messy"]
    assert entry.distribution == "$SPADEKIT_PLUGINS"
    assert registry.get("datasets", "messy").summary.startswith("Tiny dataset")
    assert "messy" not in registry.names("generators")


def test_unknown_name_suggests_and_lists_available():
    with pytest.raises(SpadekitError, match=r"did you mean 'toyscapes'.*available: .*toyscapes"):
        registry.get("datasets", "toyscape")


def test_malformed_environment_entry_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SPADEKIT_PLUGINS", "messy")
    with pytest.raises(SpadekitError, match="name=module:attr"):
        registry.entries("datasets")


def test_entry_point_naming_something_else_is_rejected(monkeypatch):
    monkeypatch.setenv("SPADEKIT_PLUGINS", "sneaky=tests.fixture_plugins:MessyOptions")
    with pytest.raises(SpadekitError, match="does not name a spadekit PluginSpec"):
        registry.entries("datasets")


def test_plugin_options_reject_unknown_keys_with_the_nearest():
    spec = registry.get("datasets", "toyscapes")
    with pytest.raises(SpadekitError, match="'sise'.*did you mean 'size'"):
        spec.parse_options({"sise": 3})
    with pytest.raises(SpadekitError, match="'size'"):
        spec.parse_options({"size": 1000})


def test_plugins_json_lists_group_name_summary_distribution_version(monkeypatch, cli):
    out = cli("plugins", "--json", env={"SPADEKIT_PLUGINS": "messy=tests.fixture_plugins:messy"})
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert rows["toyscapes"]["group"] == "spadekit.datasets"
    assert rows["toyscapes"]["distribution"] == "spadekit" and rows["toyscapes"]["version"]
    assert rows["toyscapes"]["summary"]
    assert rows["messy"]["distribution"] == "$SPADEKIT_PLUGINS"
