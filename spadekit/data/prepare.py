"""`spadekit prepare`: turn a dataset plugin's samples into shards, resumably and in parallel.

The output folder holds `prepare.json` (what was asked: dataset, options, splits), the shard files, one
record per finished shard in `.parts/` (sample count, sha256, class pixel counts, skipped files), and, once
every shard of every split exists, `manifest.json`. Shard j of a split always holds the same samples, so
an interrupted run resumed with `resume=True`, or disjoint `shard_index/num_shards` parts run on several
machines, produce exactly the shards of one uninterrupted run. A source file the plugin cannot use is skipped
and listed (in the shard's record and the summary); with `strict=True` it stops the preparation instead.
Either way a shard is written whole or not at all. A split whose every source file was skipped stops the
preparation (no manifest is written): a dataset without its train split is of no use to any reader.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spadekit import registry
from spadekit.console import progress as progress_of
from spadekit.data.manifest import MANIFEST_NAME, DatasetFacts, Manifest, ShardInfo, SplitInfo
from spadekit.data.sample import Sample
from spadekit.data.sample_pool import SampleLoader, Shard
from spadekit.data.shards import write_shard
from spadekit.data.workers import cap_workers
from spadekit.data.writes import file_in_the_way, first_line, first_missing, os_reason, writing
from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_text

JOB_NAME = "prepare.json"
PARTS_DIR = ".parts"
MAX_SIDE = 8192  # resize: 8192^2 pixels is below PIL's decompression-bomb limit; larger is a typo
RESUME_FIX = "free space or make the folder writable, then run the same command with --resume to continue"


class PrepareOptions(BaseModel):
    """Settings of the shards themselves, given with `--set` beside the dataset plugin's own options."""

    model_config = ConfigDict(extra="forbid")

    shard_size: int = Field(256, ge=1, description="samples per shard file")
    resize: tuple[int, int] | None = Field(None, description="store at WxH (or N for NxN) instead of native")

    @field_validator("resize", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> Any:
        if isinstance(value, int):
            return (value, value)
        if isinstance(value, str):
            w, _, h = value.lower().partition("x")
            try:
                return (int(w), int(h or w))
            except ValueError:
                raise ValueError("expected N or WxH, e.g. 256 or 512x256") from None
        return value

    @field_validator("resize")
    @classmethod
    def _check_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(1 <= side <= MAX_SIDE for side in value):
            raise ValueError(f"width and height must be 1 to {MAX_SIDE} pixels")
        return value


class PartRecord(BaseModel):
    """`.parts/<shard>.json`: a finished shard's manifest entry, its class pixel counts and skipped files."""

    model_config = ConfigDict(extra="forbid")

    file: str
    num_samples: int = Field(ge=0)
    sha256: str
    class_pixels: dict[str, int]
    skipped: list[tuple[str, str]]


@dataclass
class SplitSummary:
    samples: int = 0
    shards_done: int = 0
    shards_total: int = 0
    classes_seen: set[int] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PrepareSummary:
    out: Path
    facts: DatasetFacts
    splits: dict[str, SplitSummary]
    written_now: int  # shards written by this call
    complete: bool  # manifest written
    notes: list[str] = field(default_factory=list)  # the source's own summary lines (e.g. what a filter kept)


def prepare(
    dataset: str,
    out: Path,
    src: Path | None = None,
    splits: list[str] | None = None,
    settings: dict[str, Any] | None = None,
    workers: int = 1,
    resume: bool = False,
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = False,
    strict: bool = False,
) -> PrepareSummary:
    """Write the shards of `dataset` under `out`; see the module docstring for the guarantees.

    Everything that can be refused (settings, worker count, the output folder, damaged records of an
    earlier run) is checked before the first write, so a refused call leaves the disk as it was. `progress`
    shows a bar of the source files read.
    """
    if not 0 <= shard_index < num_shards:
        raise SpadekitError(f"--shard-index {shard_index} must be in 0..{num_shards - 1} (--num-shards {num_shards}).")
    workers = cap_workers(workers)
    spec = registry.get("datasets", dataset)
    core, plugin_options = _split_settings(settings or {}, spec)
    source = spec.build(plugin_options, src=src)
    splits = _check_splits(splits, source.splits(), dataset)
    job = {
        "dataset": dataset,
        "src": str(src) if src is not None else None,
        "options": plugin_options.model_dump(mode="json"),
        "storage": core.model_dump(mode="json"),
        "splits": splits,
    }
    out = Path(out)
    _check_output(out, job, resume)
    plan = _plan(source, splits, core.shard_size)
    done = {s.file for s in plan if _read_record(out, s) is not None}  # every record checked before a write
    mine = [s for i, s in enumerate(plan) if i % num_shards == shard_index and s.file not in done]
    _claim_output(out, job)
    with writing(out, RESUME_FIX):
        for shard in mine:  # half-written files of an interrupted run; other parts' files are theirs
            for stale in out.glob(f".{shard.file}.tmp*"):
                stale.unlink()
    total = sum(len(s.keys) for s in mine)
    bar = progress_of("preparing", total, "samples") if progress else contextlib.nullcontext(None)
    loader = SampleLoader(dataset, job["options"], src, core.resize, workers, source, strict)
    with loader, bar as advance:
        for shard, samples, skipped in loader.shards(mine, advance):
            _write(out, shard, samples, skipped, source.facts)
    summary = _finish(out, source.facts, plan, splits, core.resize, written_now=len(mine))
    summary.notes = list(getattr(source, "summary_lines", list)())
    return summary


def _split_settings(settings: dict[str, Any], spec: registry.PluginSpec) -> tuple[PrepareOptions, BaseModel]:
    """`--set` keys that name shard settings go to PrepareOptions, the rest to the plugin's options."""
    core_keys = set(PrepareOptions.model_fields)
    try:
        core = PrepareOptions.model_validate({k: v for k, v in settings.items() if k in core_keys})
    except ValidationError as err:
        raise SpadekitError(registry.describe_validation_error(err, PrepareOptions, "--set")) from None
    plugin_values = {k: v for k, v in settings.items() if k not in core_keys}
    try:
        return core, spec.parse_options(plugin_values)
    except SpadekitError as err:
        raise SpadekitError(f"{err} (shard settings: {', '.join(sorted(core_keys))})") from None


def _check_splits(wanted: list[str] | None, available: list[str], dataset: str) -> list[str]:
    if not wanted:
        return available
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise SpadekitError(
            f"Dataset {dataset!r} has no split {unknown[0]!r}; pass --splits with some of: {', '.join(available)}."
        )
    return wanted


def _check_output(out: Path, job: dict[str, Any], resume: bool) -> None:
    """Refuse to mix two different preparations in one folder, or to write into a file; reads only."""
    blocker = out if out.exists() and not out.is_dir() else file_in_the_way(out)
    if blocker:
        raise SpadekitError(f"--out {out}: {blocker} is a file; choose a folder (new or empty) for the shards.")
    job_file = out / JOB_NAME
    if job_file.is_file():
        if not resume:
            raise SpadekitError(
                f"{out} already holds shards; add --resume to continue that preparation or choose an empty --out."
            )
        previous = _read_job(job_file)
        if previous != job:
            diff = [k for k in job if previous.get(k) != job[k]]
            raise SpadekitError(
                f"{out} was prepared with a different {', '.join(diff)} ({previous.get(diff[0])!r}); "
                "resume with the same command or choose an empty --out."
            )
    elif out.exists() and any(out.iterdir()):
        raise SpadekitError(f"{out} is not empty and holds no spadekit shards; choose an empty or new --out.")


def _read_job(job_file: Path) -> dict[str, Any]:
    """The recorded job of a folder being resumed; without it the folder's shards cannot be trusted."""
    try:
        job = json.loads(job_file.read_text())
        problem = None if isinstance(job, dict) else "not a JSON object"
    except (OSError, ValueError) as err:
        problem = first_line(err)
    if problem:
        raise SpadekitError(
            f"{job_file} is damaged ({problem}); it records how {job_file.parent} was prepared, so start again "
            "without --resume in a new --out (or delete that folder)."
        )
    return job


def _claim_output(out: Path, job: dict[str, Any]) -> None:
    """Create --out and record the job there (once); when that fails, leave the folder as it was."""
    if (out / JOB_NAME).is_file():
        with writing(out / PARTS_DIR, RESUME_FIX):
            (out / PARTS_DIR).mkdir(exist_ok=True)
        return
    created = first_missing(out)
    try:
        with writing(out, "choose a writable --out (new or empty)"):
            (out / PARTS_DIR).mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / JOB_NAME, json.dumps(job, indent=2) + "\n")
    except SpadekitError:
        leftovers = [created] if created else [out / PARTS_DIR, *out.glob(f".{JOB_NAME}.tmp*")]
        _remove(leftovers)
        raise


def _remove(paths: list[Path]) -> None:
    """Best-effort clean-up after a failure: the failure, not the clean-up, is what the user must hear about."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _plan(source: Any, splits: list[str], shard_size: int) -> list[Shard]:
    plan: list[Shard] = []
    for split in splits:
        keys = list(source.keys(split))
        if not keys:
            raise SpadekitError(f"Split {split!r} of {source.facts.name!r} has no samples; check --src or --splits.")
        count = math.ceil(len(keys) / shard_size)
        plan += [Shard(split, j, count, keys[j * shard_size : (j + 1) * shard_size]) for j in range(count)]
    return plan


def _part_path(out: Path, shard: Shard) -> Path:
    return out / PARTS_DIR / f"{shard.file}.json"


def _read_record(out: Path, shard: Shard) -> PartRecord | None:
    """The record of a finished shard (None when the shard or its record is absent: it is still to write);
    a damaged record is an error, since the shard it vouches for cannot be trusted either."""
    path = _part_path(out, shard)
    if not (path.is_file() and (out / shard.file).is_file()):
        return None
    try:
        record = PartRecord.model_validate_json(path.read_bytes())
        problem = None if record.file == shard.file else f"it describes {record.file}"
    except ValidationError as err:
        first = err.errors()[0]
        problem = ".".join(str(p) for p in first["loc"]) + (": " if first["loc"] else "") + first["msg"]
    except OSError as err:
        problem = os_reason(err)
    if problem:
        raise SpadekitError(
            f"{path} is damaged ({problem}); delete it and {out / shard.file}, then run the same command with "
            "--resume to write that shard again."
        )
    return record


def _write(out: Path, shard: Shard, samples: list[Sample], skipped: list, facts: DatasetFacts) -> None:
    if samples and facts.has_instances != (samples[0].instance is not None):
        raise ValueError(f"{facts.name}: has_instances={facts.has_instances} but samples disagree")
    pixels = np.zeros(0, np.int64)
    for s in samples:
        counts = np.bincount(s.label.ravel(), minlength=pixels.size)
        pixels = np.pad(pixels, (0, counts.size - pixels.size)) + counts
    part = _part_path(out, shard)
    with writing(out / shard.file, RESUME_FIX):
        digest = write_shard(out / shard.file, shard.split, shard.index, samples, facts.has_instances)
    record = PartRecord(
        file=shard.file,
        num_samples=len(samples),
        sha256=digest,
        class_pixels={str(i): int(c) for i, c in enumerate(pixels) if c},
        skipped=skipped,
    )
    with _atomic_writing(part):
        atomic_write_text(part, json.dumps(record.model_dump()) + "\n")


@contextlib.contextmanager
def _atomic_writing(path: Path) -> Iterator[None]:
    """`writing` for an atomic_write_text of `path`: its temp file, cut short by a full disk, is removed too."""
    try:
        with writing(path, RESUME_FIX):
            yield
    except SpadekitError:
        _remove(list(path.parent.glob(f".{path.name}.tmp*")))
        raise


def _finish(out: Path, facts: DatasetFacts, plan: list[Shard], splits: list[str], resize, written_now: int):
    """Sum up the records; when every shard of every split exists, write the manifest (an empty split is
    refused instead: a dataset whose train split holds nothing is of no use, and no reader expects one)."""
    summary = {s: SplitSummary() for s in splits}
    shards: dict[str, list[ShardInfo]] = {s: [] for s in splits}
    for shard in plan:
        part = summary[shard.split]
        part.shards_total += 1
        record = _read_record(out, shard)
        if record is None:
            continue
        part.shards_done += 1
        part.samples += record.num_samples
        part.classes_seen |= {int(i) for i in record.class_pixels if int(i) < facts.label_nc}  # not don't-care
        part.skipped += record.skipped
        shards[shard.split].append(ShardInfo(file=record.file, num_samples=record.num_samples, sha256=record.sha256))
    complete = all(p.shards_done == p.shards_total for p in summary.values())
    with _atomic_writing(out / MANIFEST_NAME):
        if complete:
            _refuse_empty_splits(out, plan, summary)
            split_infos = {s: SplitInfo(num_samples=summary[s].samples, shards=shards[s]) for s in splits}
            Manifest(dataset=facts, resize=resize, splits=split_infos).save(out)
        elif (out / MANIFEST_NAME).exists():
            (out / MANIFEST_NAME).unlink()
    return PrepareSummary(out, facts, summary, written_now, complete)


def _refuse_empty_splits(out: Path, plan: list[Shard], summary: dict[str, SplitSummary]) -> None:
    """Stop, naming why, when every source file of a split was skipped; its (empty) shards and records are
    removed so that a resume after fixing the files converts that split again."""
    for split, part in summary.items():
        if part.samples or not part.skipped:
            continue
        ours = [s for s in plan if s.split == split]
        _remove([out / MANIFEST_NAME, *(out / s.file for s in ours), *(_part_path(out, s) for s in ours)])
        key, reason = part.skipped[0]
        raise SpadekitError(
            f"Every source file of split {split!r} was skipped ({len(part.skipped)} of {len(part.skipped)}; "
            f"the first, {key!r}: {reason}); fix those files and run the same command with --resume (the "
            "other splits' shards are kept)."
        )
