"""A run directory: what was trained, on which label space, and how to get its generator back.

`RUN_DIR/run.json` names the generator plugin, its options and the dataset facts (class names, palette,
don't-care, instances) and image geometry, so that `synth`, `bench` and `serve` need nothing but the run
directory. Checkpoints live in `RUN_DIR/checkpoints/` (see `spadekit.checkpoints`) and hold state
dicts under the keys below; a checkpoint made by `spadekit import nvlabs` holds only weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from spadekit import __version__
from spadekit.data.manifest import DatasetFacts
from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_text
from spadekit.generator import GeneratorContext, build_generator
from spadekit.nn.semantics import LabelSpace

RUN_INFO = "run.json"
# checkpoint keys holding state dicts
GENERATOR, EMA, DISCRIMINATOR = "generator", "ema", "discriminator"


class RunInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    generator: str  # plugin name
    generator_version: str  # version of the distribution that provides the plugin
    options: dict[str, Any]  # the plugin's validated options
    facts: DatasetFacts
    use_instance: bool
    crop_size: int
    aspect_ratio: float = 1.0
    origin: str = "spadekit train"
    spadekit_version: str = __version__

    @property
    def space(self) -> LabelSpace:
        return LabelSpace.from_facts(self.facts, self.use_instance)

    @property
    def context(self) -> GeneratorContext:
        return GeneratorContext(self.space, self.crop_size, self.aspect_ratio)

    def save(self, run_dir: Path) -> None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(run_dir) / RUN_INFO, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> RunInfo:
        path = Path(run_dir) / RUN_INFO
        if not path.is_file():
            raise SpadekitError(
                f"{run_dir} is not a run directory: {path} is missing; give a folder made by `spadekit train` "
                "or `spadekit import nvlabs`."
            )
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, ValidationError) as err:
            raise SpadekitError(f"{path} is damaged ({str(err).splitlines()[0]}); restore it from a backup.") from None

    def build_generator(self) -> nn.Module:
        return build_generator(self.generator, self.options, self.context)


def load_generator(run_dir: Path, checkpoint: Path | None = None, use_ema: bool = True) -> tuple[nn.Module, RunInfo]:
    """The run's generator in eval mode, with the EMA weights when the checkpoint has them."""
    generator, info, _ = load_generator_weights(run_dir, checkpoint, use_ema)
    return generator, info


def load_generator_weights(run_dir: Path, checkpoint: Path | None = None,
                           use_ema: bool = True) -> tuple[nn.Module, RunInfo, str]:
    """`load_generator`, and which weights it loaded: "ema", or "generator" (asked for, or no EMA saved)."""
    from spadekit.checkpoints import latest_checkpoint, load_checkpoint

    info = RunInfo.load(run_dir)
    path = checkpoint or latest_checkpoint(run_dir)
    if path is None:
        folder = Path(run_dir) / "checkpoints"
        raise SpadekitError(f"Run {run_dir} has no checkpoint yet under {folder}; train it first.")
    state = load_checkpoint(path)
    key = EMA if use_ema and state.get(EMA) is not None else GENERATOR
    generator = info.build_generator()
    load_state(generator, state[key], f"{path} [{key}]")
    return generator.eval(), info, key


def load_state(module: nn.Module, state: dict, where: str) -> None:
    """Strict load whose failure is one sentence naming the checkpoint and the offending keys."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        shapes = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
        raise SpadekitError(f"Checkpoint {where} does not fit the model: {few_keys(shapes, 2)}; "
                            "was it trained with other options or another dataset?") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys {few_keys(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys {few_keys(result.unexpected_keys)}")
    if problems:
        raise SpadekitError(f"Checkpoint {where} does not fit the model: {'; '.join(problems)}; "
                            "was it trained with other options or another dataset?")


def few_keys(keys: list[str], limit: int = 5) -> str:
    """The first `limit` keys, for error messages: 'a, b, c and 7 more'."""
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more
