"""tinygen: a third-party generator plugin, written against spadekit's plugin API only
(`spadekit.plugin`).

This module is what the entry point names: the spec, light to import (no torch); the network is in
`spadekit_tinygen.generator` and its training method in `spadekit_tinygen.method`, imported when
the plugin is built.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import PluginSpec


class TinyGenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(16, gt=0, description="channels of the hidden convs")


def build(options: TinyGenOptions, context):
    from spadekit_tinygen.generator import TinyGenerator

    return TinyGenerator(options.width, context)


def method(options: TinyGenOptions, context, recipe):
    from spadekit_tinygen.method import TinyMethod

    return TinyMethod()


spec = PluginSpec(
    kind="generators",
    name="tinygen",
    summary="Three convs from the label map to RGB (a third-party plugin for spadekit's contract test).",
    options=TinyGenOptions,
    factory=build,
    method=method,  # trains with its own discriminator and losses (spadekit_tinygen.method)
)
