"""Plugin discovery: one mechanism for every plugin group.

A plugin is an entry point in one of the groups below whose target is a `PluginSpec`. Listing plugin names
reads installed metadata only; a spec is imported when it is asked for by name (or when `spadekit plugins`
shows summaries), and a spec module is kept light so that this never imports torch or the implementation:
the factory imports that when the plugin is actually built.

`SPADEKIT_PLUGINS="name=module:attr,..."` registers specs without installing a distribution (handy while
writing a plugin); such a spec says its own group and takes precedence over an installed one of that name.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ValidationError

from spadekit.errors import SpadekitError

GROUPS = {
    "generators": "spadekit.generators",
    "datasets": "spadekit.datasets",
    "segmenters": "spadekit.segmenters",
}
ENV_VAR = "SPADEKIT_PLUGINS"


@dataclass(frozen=True)
class PluginSpec:
    """What an entry point names: a plugin's identity, its options model and how to build it."""

    kind: str  # a key of GROUPS
    name: str
    summary: str
    options: type[BaseModel]
    factory: Callable[..., Any]  # factory(options, **context) -> the plugin object
    # generators only: method(options, context=..., recipe=...) -> a spadekit.method.Method (its own
    # discriminator and objective); None trains with the paper's
    method: Callable[..., Any] | None = None

    def parse_options(self, values: dict[str, Any]) -> BaseModel:
        """Validate user-given options against the plugin's own model; errors name the key."""
        try:
            return self.options.model_validate(values)
        except ValidationError as err:
            where = f"{self.kind[:-1]} {self.name!r}"
            raise SpadekitError(describe_validation_error(err, self.options, where)) from None

    def build(self, values: dict[str, Any] | BaseModel, **context: Any) -> Any:
        options = values if isinstance(values, BaseModel) else self.parse_options(values)
        return self.factory(options, **context)


@dataclass(frozen=True)
class PluginEntry:
    """A discovered plugin before its spec is imported."""

    kind: str
    name: str
    target: str  # "module:attr"
    distribution: str
    version: str

    def load(self) -> PluginSpec:
        spec = _import_target(self.target)
        if not isinstance(spec, PluginSpec) or spec.kind != self.kind or spec.name != self.name:
            raise SpadekitError(
                f"Plugin {self.name!r} ({self.target}, from {self.distribution}) is not a {self.kind[:-1]} "
                f"PluginSpec named {self.name!r}; fix the plugin's entry point."
            )
        return spec


def entries(kind: str) -> dict[str, PluginEntry]:
    """All plugins of one group, by name, without importing any plugin code."""
    _check_kind(kind)
    found: dict[str, PluginEntry] = {}
    for ep in metadata.entry_points(group=GROUPS[kind]):
        dist = ep.dist
        found[ep.name] = PluginEntry(
            kind, ep.name, ep.value, dist.name if dist else "?", dist.version if dist else "?"
        )
    found.update({name: e for name, e in _env_entries().items() if e.kind == kind})
    return dict(sorted(found.items()))


def names(kind: str) -> list[str]:
    return list(entries(kind))


def get(kind: str, name: str) -> PluginSpec:
    """The spec of one plugin; an unknown name lists the available ones."""
    available = entries(kind)
    if name not in available:
        hint = difflib.get_close_matches(name, available, n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise SpadekitError(
            f"Unknown {kind[:-1]} plugin {name!r}{did_you_mean}; available: {', '.join(available) or 'none'}."
        )
    return available[name].load()


def _check_kind(kind: str) -> None:
    if kind not in GROUPS:
        raise ValueError(f"unknown plugin kind {kind!r}; expected one of {sorted(GROUPS)}")


def _env_entries() -> dict[str, PluginEntry]:
    """Plugins registered through SPADEKIT_PLUGINS; their specs are imported to learn their group."""
    raw = os.environ.get(ENV_VAR, "").strip()
    found: dict[str, PluginEntry] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise SpadekitError(
                f"{ENV_VAR} entry {item!r} is not of the form name=module:attr; fix the environment variable."
            )
        spec = _import_target(target.strip())
        if not isinstance(spec, PluginSpec):
            raise SpadekitError(f"{ENV_VAR} entry {item!r} does not name a spadekit PluginSpec.")
        found[name.strip()] = PluginEntry(spec.kind, name.strip(), target.strip(), f"${ENV_VAR}", "-")
    return found


def _import_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise SpadekitError(f"Cannot import plugin module {module_name!r} ({err}); is the plugin installed?") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SpadekitError(f"Plugin module {module_name!r} has no attribute {attr!r}; fix the entry point.") from None


def describe_validation_error(err: ValidationError, model: type[BaseModel], where: str) -> str:
    """One sentence for the first problem in a pydantic error, naming the key and the nearest valid one."""
    first = err.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        valid = _field_names(model, first["loc"][:-1])
        hint = difflib.get_close_matches(str(first["loc"][-1]), valid, n=1)
        nearest = f"did you mean {hint[0]!r}? " if hint else ""
        return f"Unknown key {loc!r} in {where}; {nearest}valid keys: {', '.join(valid)}."
    message = first["msg"].removeprefix("Value error, ")
    return f"Invalid value for {loc!r} in {where}: {message} (got {first.get('input')!r})."


def _field_names(model: type[BaseModel], path: tuple) -> list[str]:
    """Field names of the (nested) model reached by following `path` through model fields."""
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)
