"""A generator plugin spec for tests, registered with SPADEKIT_PLUGINS="toygen=fake_generator:spec"."""

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import PluginSpec


class ToyGenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ngf: int = Field(8, gt=0)
    use_vae: bool = False


spec = PluginSpec(
    kind="generators",
    name="toygen",
    summary="A do-nothing generator for configuration tests.",
    options=ToyGenOptions,
    factory=lambda options, **context: None,
)
