"""Recipes: the pydantic-settings models of a training/benchmark recipe and how one is loaded.

Precedence, highest first: `--set section.key=value` overrides, environment `SPADEKIT_SECTION__KEY`, the
TOML recipe, the defaults below (the paper's and the official code's). `[model]` names a generator plugin
and holds its options, which the plugin's own options model validates.
"""

from __future__ import annotations

import contextvars
import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, create_model, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from spadekit import registry
from spadekit.errors import SpadekitError
from spadekit.nn.norm_names import LayerNorm
from spadekit.preprocess import DEFAULT_MODE, Mode, Preprocess, PreprocessOptions
from spadekit.toml import tomllib

_SECTION = ConfigDict(extra="forbid")
Latent = Literal["encode", "prior"]  # bench: z around the paired real image's encoding, or from the prior


class _DataSource(BaseModel):
    model_config = _SECTION
    shards: Path | None = None
    split: str = "train"
    preprocess: Mode = DEFAULT_MODE  # `Preprocess.mode`, named as the official --preprocess_mode


# Bases in this order keep the keys in their TOML order: shards, split, preprocess, load_size, ..., flip, batch_size.
class DataSection(PreprocessOptions, _DataSource):
    model_config = _SECTION
    batch_size: int = Field(1, gt=0)  # the global batch: split evenly over the training processes
    num_workers: int = Field(4, ge=0)
    use_instance: bool = True  # feed instance edges to the generator when the dataset has instance maps

    def preprocessing(self) -> Preprocess:
        """The loader's preprocessing of this section."""
        return Preprocess(mode=self.preprocess, **self.model_dump(include=set(PreprocessOptions.model_fields)))


class ModelSection(BaseModel):
    """The generator plugin's name; every other key is one of its options (validated by the plugin)."""

    model_config = ConfigDict(extra="allow")
    name: str = "spade"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DiscriminatorSection(BaseModel):
    model_config = _SECTION
    num_D: int = Field(2, ge=1)
    n_layers: int = Field(4, ge=1)
    ndf: int = Field(64, gt=0)
    norm: LayerNorm = "spectralinstance"


class LossSection(BaseModel):
    """The generator's loss terms and weights. A generator plugin may declare other defaults (its options
    model's `default_loss`, see `spadekit.generator`); the recipe overrides those."""

    model_config = _SECTION
    gan_mode: Literal["hinge", "ls", "original"] = "hinge"
    lambda_gan: float = Field(1.0, ge=0)  # 0: no adversarial training, the discriminator step is skipped
    lambda_feat: float = Field(10.0, ge=0)
    lambda_vgg: float = Field(10.0, ge=0)
    lambda_l1: float = Field(0.0, ge=0)  # pixel L1 between generated and real image (a regression loss)
    lambda_kld: float = Field(0.05, ge=0)
    vgg_weights: Path | None = None


class OptimSection(BaseModel):
    """Adam with the official code's TTUR: G at lr/2, D at 2*lr, betas (0, 0.9)."""

    model_config = _SECTION
    lr_G: float = Field(1e-4, gt=0)
    lr_D: float = Field(4e-4, gt=0)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.9, ge=0, lt=1)


class TrainSection(BaseModel):
    model_config = _SECTION
    epochs: int = Field(50, gt=0)
    decay_epochs: int = Field(0, ge=0)  # the last `decay_epochs` of `epochs` decay the lr linearly to 0
    max_steps: int | None = Field(None, gt=0)
    max_minutes: float | None = Field(None, gt=0)  # stop (with samples and a checkpoint) after this much training
    seed: int = Field(0, ge=0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False  # NHWC weights and activations for the generator and discriminator (`build.tune`)
    compile: bool = False  # torch.compile them; SPADE blocks then run their plain form, which compile fuses
    ema_decay: float = Field(0.999, ge=0, lt=1)  # 0 turns the EMA generator off
    log_every: int = Field(100, gt=0)
    sample_every: int = Field(1000, gt=0)
    checkpoint_every: int = Field(5000, gt=0)
    keep_checkpoints: int = Field(3, gt=0)  # older step checkpoints are deleted
    sample_rows: int = Field(8, gt=0, le=8)  # rows of each sample grid (label | generated | real)
    init_from: Path | None = None  # fine-tuning: start from this run directory's weights, fresh optimizers

    @model_validator(mode="after")
    def _decay_within_epochs(self) -> TrainSection:
        if self.decay_epochs > self.epochs:
            raise ValueError(f"decay_epochs ({self.decay_epochs}) must not exceed epochs ({self.epochs})")
        return self


class BenchSection(BaseModel):
    """The benchmark protocol's choices (see `spadekit.bench.protocol`); `spadekit bench` flags override them."""

    model_config = _SECTION
    split: str = "val"
    num_images: int | None = Field(None, gt=0)  # None: the whole split
    segmenter: str | None = None  # a segmenter plugin; "smp" when only segmenter_ckpt is set
    segmenter_ckpt: Path | None = None  # its weights; a paper segmenter also looks in the torch hub cache
    segment_resolution: tuple[PositiveInt, PositiveInt] | None = None  # (width, height) the generated images are
    # resized to (bilinear) before segmentation; None: segmented as generated (the protocol of OASIS, CLADE)
    generator_weights: Literal["ema", "raw"] = "ema"  # raw: the trained weights, as the paper's code (no EMA)
    fid_weights: Path | None = None  # torch-fidelity's Inception weights; default: the torch hub cache's
    latent: Latent = "encode"  # VAE generators only
    seed: int = Field(0, ge=0)


# The parsed TOML of the recipe being loaded; a context variable because pydantic-settings builds its
# sources per class, while the recipe path is per call.
_RECIPE_DATA: contextvars.ContextVar[dict | None] = contextvars.ContextVar("recipe_data", default=None)


class _RecipeFileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _RECIPE_DATA.get() or {}


class Recipe(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPADEKIT_", env_nested_delimiter="__", extra="forbid")

    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    discriminator: DiscriminatorSection = DiscriminatorSection()
    loss: LossSection = LossSection()
    optim: OptimSection = OptimSection()
    train: TrainSection = TrainSection()
    bench: BenchSection = BenchSection()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _RecipeFileSource(settings_cls)

    def model_plugin_options(self) -> BaseModel:
        """The `[model]` options validated by the named generator plugin's own options model."""
        return _plugin_options(self.model.name, self.model.options)

    def resolved_toml(self) -> str:
        return to_toml(self.model_dump(mode="json"))


def load_recipe(path: Path | None, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load a recipe: defaults < TOML file < SPADEKIT_* environment < dotted `overrides` (from --set)."""
    data = _read_toml(Path(path)) if path is not None else {}
    nested = _nest_overrides(overrides or {})
    recipe = _settings(data, nested, path)
    plugin_loss = _plugin_default_loss(recipe.model.name)
    if plugin_loss:  # beneath the recipe's own [loss] values, so that everything above still overrides them
        recipe = _settings({**data, "loss": {**plugin_loss, **data.get("loss", {})}}, nested, path)
    _check_losses(recipe.loss)
    options = _plugin_options(recipe.model.name, recipe.model.options)
    model = ModelSection(name=recipe.model.name, **options.model_dump(mode="json"))
    return recipe.model_copy(update={"model": model})


def _settings(data: dict[str, Any], nested: dict[str, dict[str, Any]], path: Path | None) -> Recipe:
    """The Recipe from the TOML data (beneath) the environment and the --set overrides."""
    token = _RECIPE_DATA.set(data)
    try:
        return Recipe(**nested)
    except ValidationError as err:
        where = _origin(err.errors()[0]["loc"], nested, path)
        raise SpadekitError(registry.describe_validation_error(err, Recipe, where)) from None
    except SettingsError as err:
        message = f"A SPADEKIT_* environment variable is malformed ({err}); fix or unset it."
        raise SpadekitError(message) from None
    finally:
        _RECIPE_DATA.reset(token)


def _plugin_default_loss(name: str) -> dict[str, Any]:
    """The [loss] defaults a generator plugin declares (`default_loss` on its options model), checked."""
    declared = getattr(registry.get("generators", name).options, "default_loss", None) or {}
    try:
        LossSection.model_validate(declared)
    except ValidationError as err:
        problem = registry.describe_validation_error(err, LossSection, f"generator plugin {name!r}'s default_loss")
        raise SpadekitError(f"{problem.removesuffix('.')}; fix the plugin.") from None
    return dict(declared)


def _check_losses(loss: LossSection) -> None:
    """Refuse loss settings that train nothing or match the features of a discriminator nobody trains."""
    if loss.lambda_gan == 0 and loss.lambda_feat > 0:
        raise SpadekitError(
            f"loss.lambda_feat = {loss.lambda_feat} matches features of the discriminator, but loss.lambda_gan = 0 "
            "trains none; set loss.lambda_feat = 0, or loss.lambda_gan > 0 for adversarial training."
        )
    if loss.lambda_gan == 0 and loss.lambda_vgg == 0 and loss.lambda_l1 == 0:
        raise SpadekitError(
            "The recipe's losses are all off (loss.lambda_gan, lambda_vgg and lambda_l1 are 0), so nothing would "
            "train the generator; set loss.lambda_vgg (needs the VGG19 weights), loss.lambda_l1 or loss.lambda_gan."
        )


def _plugin_options(name: str, options: dict[str, Any]) -> BaseModel:
    spec = registry.get("generators", name)
    # Validating under a `model` field makes the error's key read `model.<key>`, as in the recipe.
    wrapper = create_model("ModelOptions", __config__=_SECTION, model=(spec.options, ...))
    try:
        return wrapper.model_validate({"model": options}).model  # type: ignore[attr-defined]
    except ValidationError as err:
        where = f"the recipe's model section (generator plugin {name!r})"
        raise SpadekitError(registry.describe_validation_error(err, wrapper, where)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpadekitError(f"Recipe file {path} does not exist; check the path.") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        message = f"Cannot read recipe file {path} ({err}); give a readable UTF-8 TOML file."
        raise SpadekitError(message) from None
    except tomllib.TOMLDecodeError as err:
        raise SpadekitError(f"Recipe file {path} is not valid TOML: {err}; fix the file.") from None


def _valid_keys() -> list[str]:
    return [f"{s}.{k}" for s, f in Recipe.model_fields.items() for k in f.annotation.model_fields]


def _nest_overrides(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{"train.seed": 3}` -> `{"train": {"seed": 3}}`; `model.<anything>` goes to the generator plugin."""
    nested: dict[str, dict[str, Any]] = {}
    valid = _valid_keys()
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if key not in valid and not (section == "model" and name and "." not in name):
            hint = difflib.get_close_matches(key, valid, n=1)
            nearest = f"did you mean {hint[0]!r}? " if hint else ""
            message = f"--set {key!r} is not a recipe key; {nearest}keys are section.key, e.g. train.seed."
            raise SpadekitError(message)
        nested.setdefault(section, {})[name] = value
    return nested


def _origin(loc: tuple, overrides: dict[str, Any], path: Path | None) -> str:
    """Which source gave the offending key: --set, then the environment, then the recipe file."""
    keys = [str(part) for part in loc]
    if keys and keys[0] in overrides and (len(keys) < 2 or keys[1] in overrides[keys[0]]):
        return "--set"
    env_name = "SPADEKIT_" + "__".join(keys).upper()
    if any(name.upper() == env_name for name in os.environ):
        return f"environment variable {env_name}"
    return f"recipe {path}" if path is not None else "the default recipe"


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    """TOML text for a dict of sections of simple values; None values are written as comments."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{_toml_key(section)}]")
        for key, value in values.items():
            lines.append(f"# {key} is unset" if value is None else f"{_toml_key(key)} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return _toml_string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def shards_of(recipe: Recipe) -> Path:
    """The recipe's shards folder; a recipe without one is a user error saying how to give it."""
    if recipe.data.shards is None:
        raise SpadekitError(
            'The recipe sets no data.shards: add `shards = "PATH"` under [data] or pass '
            "--set data.shards=PATH (make shards with `spadekit prepare`)."
        )
    return Path(recipe.data.shards)
