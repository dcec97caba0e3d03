"""Setting up a run directory before training: new, resumed or fine-tuned, and consistent with its recipe.

Checking and writing are apart: `check_run_dir` refuses a run before anything is written, and the trainer
calls `write_run_dir` only once the networks are built and the checkpoint to resume has loaded into them, so
that a refused `train` leaves an existing run directory exactly as it was.
"""

from __future__ import annotations

from pathlib import Path

from spadekit import registry
from spadekit.checkpoints import latest_checkpoint, remove_stale_temps_of
from spadekit.config import Recipe, load_recipe, shards_of
from spadekit.data.manifest import Manifest
from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_text
from spadekit.run_info import RUN_INFO, RunInfo

CONFIG = "config.toml"
# keys that may change when a run is resumed: they do not change what is computed, or (the speed options
# channels_last and compile) only by float rounding
RESUMABLE_CHANGES = {
    "train.max_steps", "train.max_minutes", "train.log_every", "train.sample_every", "train.checkpoint_every",
    "train.keep_checkpoints", "data.num_workers", "train.channels_last", "train.compile",
}


def check_run_dir(recipe: Recipe, run_dir: Path, resume: bool) -> RunInfo:
    """Check that `run_dir` can start or continue this recipe, writing nothing; return the run.json to write."""
    run_dir = Path(run_dir)
    checkpoint = latest_checkpoint(run_dir)
    if resume and checkpoint is None:
        raise SpadekitError(f"--resume was given but {run_dir} has no checkpoint to resume; drop --resume to "
                            "start a new run there.")
    if not resume and checkpoint is not None:
        raise SpadekitError(f"{run_dir} already holds a run ({checkpoint.name}); pass --resume to continue it "
                            "or --run-dir NEW_DIR to start another.")
    if resume:
        _check_same_recipe(recipe, run_dir)
    shards = shards_of(recipe)
    manifest = Manifest.load(shards)
    entry = registry.entries("generators")[recipe.model.name]
    info = RunInfo(generator=recipe.model.name, generator_version=entry.version, options=recipe.model.options,
                   facts=manifest.dataset, use_instance=recipe.data.use_instance,
                   crop_size=recipe.data.crop_size, aspect_ratio=recipe.data.aspect_ratio)
    if resume:
        _check_same_dataset(info, run_dir, shards)
    return info


def write_run_dir(recipe: Recipe, run_dir: Path, info: RunInfo) -> list[Path]:
    """Write run.json and config.toml, and remove the temp files of checkpoint writes a kill interrupted
    (returned); called once nothing can refuse the run any more."""
    info.save(run_dir)
    atomic_write_text(Path(run_dir) / CONFIG, recipe.resolved_toml())
    return remove_stale_temps_of(run_dir)


def _check_same_dataset(info: RunInfo, run_dir: Path, shards: Path) -> None:
    """The shards of a resumed run must hold the dataset it was trained on: re-prepared shards with other
    classes (or palette, don't-care, instances) would change what its checkpoint means."""
    if not (run_dir / RUN_INFO).is_file():
        return  # nothing to compare with
    trained = RunInfo.load(run_dir).facts.model_dump()
    now = info.facts.model_dump()
    changed = [key for key in trained if trained[key] != now.get(key)]
    if changed:
        raise SpadekitError(f"Resuming {run_dir} on the shards at {shards}, whose dataset differs in {changed[0]} "
                            f"from the one the run was trained on ({run_dir / RUN_INFO}); point data.shards at the "
                            "shards the run was trained on, or start a new run.")


def _check_same_recipe(recipe: Recipe, run_dir: Path) -> None:
    saved_path = run_dir / CONFIG
    if not saved_path.is_file():
        return  # e.g. an imported run: nothing to compare with
    saved = _flat(load_recipe(saved_path).model_dump(mode="json"))
    now = _flat(recipe.model_dump(mode="json"))
    changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        key = changed[0]
        raise SpadekitError(f"Resuming {run_dir} with {key} = {now.get(key)!r}, but the run was trained with "
                            f"{saved.get(key)!r} ({saved_path}); resume with the same recipe or start a new run.")


def _flat(sections: dict) -> dict:
    return {f"{s}.{k}": v for s, values in sections.items() for k, v in values.items()}
