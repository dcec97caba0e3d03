"""Every package of the source tree is in pyproject.toml's package list: an editable install finds a package
that a normal install (a wheel) leaves out, so only this test notices a forgotten one."""

from __future__ import annotations

from pathlib import Path

from spadekit.toml import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_for_the_wheel():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for root, name in (("spadekit", "spadekit"), ("plugins", "spadekit_plugins")):
        for init in (REPO / root).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / root).parts
            found.add(".".join((name, *parts)))
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {sorted(found - listed)}"
