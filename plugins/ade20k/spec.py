"""The ade20k and ade20k-outdoor dataset plugins: ADEChallengeData2016 images with their 150-class annotations.

This module stays light (no numpy): `spadekit plugins` imports it to show the summary.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from spadekit.plugin import PluginSpec, SpadekitError


class Ade20kOptions(BaseModel):
    """No options: the label space is fixed (151 ids as stored, like the official SPADE)."""

    model_config = ConfigDict(extra="forbid")


def _need_src(name: str, src: Path | None) -> Path:
    if src is None:
        raise SpadekitError(
            f"Dataset {name!r} needs --src: the ADEChallengeData2016 folder (or the folder that holds it)."
        )
    return Path(src)


def build(options: Ade20kOptions, src: Path | None = None):
    root = _need_src("ade20k", src)
    from spadekit_plugins.ade20k.source import Ade20kSource

    return Ade20kSource(root)


def build_outdoor(options: Ade20kOptions, src: Path | None = None):
    root = _need_src("ade20k-outdoor", src)
    from spadekit_plugins.ade20k.source import Ade20kOutdoorSource

    return Ade20kOutdoorSource(root)


spec = PluginSpec(
    kind="datasets",
    name="ade20k",
    summary="ADE20K scene parsing (--src ADEChallengeData2016); 151 ids: 0 'other' and the 150 classes.",
    options=Ade20kOptions,
    factory=build,
)

outdoor_spec = PluginSpec(
    kind="datasets",
    name="ade20k-outdoor",
    summary="ADE20K restricted to outdoor scenes by sceneCategories.txt (the SIMS/SPADE ADE20K-outdoor subset).",
    options=Ade20kOptions,
    factory=build_outdoor,
)
