"""`spadekit bench` for one run directory: generate the split, score it, write the results beside the run.

In order: read the run's recipe (its `[bench]` section, overridden by the command line), load the generator
of the latest checkpoint (its EMA weights, or the raw ones when `[bench] generator_weights = "raw"`), build
the segmenter (a paper segmenter finds its published weights in the torch hub cache), fix the protocol, then
one pass over the split that generates each batch, segments it, and (the first time for this protocol) writes
the real images to the cache and segments them too; then FID/KID through torch-fidelity. Results go to
`RUN_DIR/bench/<split>/`: `images/` (the generated split), `scores.json`, `report.md` and `grid.png`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from spadekit.bench import fid
from spadekit.bench.eval_split import eval_batches, eval_dataset
from spadekit.bench.folders import ImageFolder, RealSet, image_name
from spadekit.bench.protocol import Protocol, shards_digest
from spadekit.bench.published import PublishedScores, published_scores
from spadekit.bench.scores import ACCURACY, FID, KID, KID_STD, MIOU
from spadekit.bench.segmentation import LabelMapping, SegmentationScorer, segmenter_files_sha256
from spadekit.config import BenchSection, load_recipe, shards_of
from spadekit.console import progress
from spadekit.data.manifest import DatasetFacts, Manifest
from spadekit.errors import SpadekitError
from spadekit.run_info import RunInfo
from spadekit.segmenter import build_segmenter
from spadekit.synthesis import Synthesizer, checked_precision, seeded
from spadekit.weights import MissingWeightsError

GRID_ROWS = 8
NO_SEGMENTER = "no segmenter given (--segmenter-ckpt PATH, or [bench] segmenter_ckpt in the recipe)"


@dataclass(frozen=True)
class BenchJob:
    """How to bench: the command line's choices; None leaves the run's recipe value."""

    overrides: dict[str, Any] = field(default_factory=dict)  # recipe keys, e.g. {"bench.num_images": 100}
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    batch_size: int = 8
    workers: int = 0


@dataclass
class RunResult:
    """The scores of one run under one protocol; `not_computed` says why a score is missing."""

    name: str
    run_dir: Path
    generator: str
    checkpoint: str
    protocol: Protocol
    scores: dict[str, float | None]  # miou, accuracy, fid, kid, kid_std
    per_class_iou: dict[str, float | None]
    real_scores: dict[str, float] | None  # the segmenter on the real images: the reference
    not_computed: dict[str, str]
    timing: dict[str, Any]  # seconds and images/s, and the device, precision and batch they were measured at
    published: PublishedScores | None  # what a paper reports for this generator on this dataset
    grid: list[tuple] = field(default_factory=list, repr=False)  # (label, generated, real) uint8 tensors

    @property
    def out_dir(self) -> Path:
        return self.run_dir / "bench" / self.protocol.split

    def as_json(self) -> dict:
        return {
            "run": str(self.run_dir), "name": self.name, "generator": self.generator, "checkpoint": self.checkpoint,
            "scores": self.scores, "not_computed": self.not_computed, "real_images": self.real_scores,
            "per_class_iou": self.per_class_iou, "protocol": self.protocol.model_dump(mode="json"),
            "timing": self.timing, "published": self.published.as_json() if self.published else None,
        }


def bench_run(run_dir: Path, job: BenchJob) -> RunResult:
    run_dir = Path(run_dir)
    info = RunInfo.load(run_dir)
    recipe = load_recipe(_recipe_path(run_dir), job.overrides)
    settings, shards = recipe.bench, shards_of(recipe)
    precision = checked_precision(job.precision, job.device)
    manifest = _matching_manifest(shards, info.facts, run_dir)
    engine = Synthesizer.load(run_dir, None, job.device, precision, settings.generator_weights == "ema")
    dataset = eval_dataset(shards, settings.split, info, settings.num_images)
    if len(dataset) == 0:
        raise SpadekitError(f"The {settings.split!r} split of {shards} is empty; bench another split (--split).")
    weights = fid.find_weights(settings.fid_weights)
    segmenter, mapping, segmenter_sha, no_segmenter = _segmenter(settings, info.facts, job.device)
    latent = engine.latent_mode(settings.latent)
    protocol = _protocol(manifest, settings, info, len(dataset), latent, weights,
                         segmenter, mapping, segmenter_sha, engine.run.weights)

    real = RealSet(protocol.real_set_key())
    real_scores = real.cached_scores(protocol.segmentation_key()) if segmenter else None
    sinks = _Sinks(
        generated=ImageFolder(run_dir / "bench" / settings.split / "images"),
        real_images=None if real.images.complete else real.images,
        gen_scorer=_scorer(segmenter, mapping, job.device, settings) if segmenter else None,
        real_scorer=_scorer(segmenter, mapping, job.device, settings) if segmenter and not real_scores else None,
    )
    rng = seeded(settings.seed)
    count, seconds = _generate(lambda batch: engine.paint_batch(batch, latent, rng), dataset, sinks, job,
                               f"bench {run_dir.name}")
    if sinks.real_scorer:
        real_scores = sinks.real_scorer.scores().metrics()
        real.save_scores(protocol.segmentation_key(), real_scores)

    scores: dict[str, float | None] = dict.fromkeys((MIOU, ACCURACY, FID, KID, KID_STD))
    not_computed: dict[str, str] = {}
    per_class: dict[str, float | None] = {}
    if sinks.gen_scorer:
        computed = sinks.gen_scorer.scores()
        scores.update(computed.metrics())
        per_class = dict(zip(segmenter.facts.class_names, computed.iou, strict=True))
    else:
        not_computed[MIOU] = not_computed[ACCURACY] = no_segmenter
    timing = {"images": count, "synthesis_and_segmentation_s": seconds, "images_per_s": count / seconds,
              "device": str(job.device), "precision": precision, "batch_size": job.batch_size}
    if weights.path is None:
        not_computed[FID] = not_computed[KID] = weights.missing
    elif count < 2:
        not_computed[FID] = not_computed[KID] = "FID and KID need at least 2 images"
    else:
        started = time.perf_counter()
        scores.update(fid.fid_kid(sinks.generated.path, real.images.path, count, weights.path,
                                  f"spadekit-real-{protocol.fidelity_key()}", job.device))
        timing["fid_kid_s"] = time.perf_counter() - started
    published = published_scores(info.generator, protocol.dataset)
    return RunResult(run_dir.name, run_dir, info.generator, engine.run.checkpoint.name, protocol, scores, per_class,
                     real_scores, not_computed, timing, published, sinks.grid)


@dataclass
class _Sinks:
    """Where each batch of the one pass over the split goes."""

    generated: ImageFolder
    real_images: ImageFolder | None  # None when the real set is already cached
    gen_scorer: SegmentationScorer | None  # None without a segmenter
    real_scorer: SegmentationScorer | None  # None without a segmenter, or when the real scores are cached
    grid: list[tuple] = field(default_factory=list)  # the first GRID_ROWS (label, generated, real)

    def add(self, names: list[str], batch: dict, fake: torch.Tensor) -> None:
        real = batch["image_uint8"]
        self.generated.write(names, fake)
        if self.real_images:
            self.real_images.write(names, real)
        if self.gen_scorer:
            self.gen_scorer.update(fake, batch["label"])
        if self.real_scorer:
            self.real_scorer.update(real, batch["label"])
        self.grid.extend(zip(batch["label"].cpu(), fake, real, strict=True))
        del self.grid[GRID_ROWS:]


def _generate(synthesize: Callable[[dict], torch.Tensor], dataset, sinks: _Sinks, job: BenchJob,
              title: str) -> tuple[int, float]:
    """Generate the split in batches into the sinks, with progress; (images, seconds)."""
    for folder in (sinks.generated, sinks.real_images):
        if folder:
            folder.start()
    started, count = time.perf_counter(), 0
    with progress(title, len(dataset), "img") as advance:
        for batch in eval_batches(dataset, job.batch_size, job.workers, job.device):
            names = [image_name(count + i, key) for i, key in enumerate(batch["key"])]
            sinks.add(names, batch, synthesize(batch))
            count += len(names)
            advance(len(names))
    seconds = time.perf_counter() - started
    for folder in (sinks.generated, sinks.real_images):
        if folder:
            folder.commit()
    return count, seconds


def _recipe_path(run_dir: Path) -> Path | None:
    path = run_dir / "config.toml"
    return path if path.is_file() else None


def _matching_manifest(shards: Path, facts: DatasetFacts, run_dir: Path) -> Manifest:
    manifest = Manifest.load(shards)
    if manifest.dataset.class_names != facts.class_names:
        raise SpadekitError(
            f"The shards {shards} ({manifest.dataset.name}, {manifest.dataset.label_nc} classes) are not the label "
            f"space run {run_dir} was trained on ({facts.name}, {facts.label_nc} classes); pass --shards with the "
            "run's dataset."
        )
    return manifest


def _scorer(segmenter, mapping: LabelMapping, device: torch.device, settings: BenchSection) -> SegmentationScorer:
    return SegmentationScorer(segmenter, mapping, device, settings.segment_resolution)


def _segmenter(settings: BenchSection, facts: DatasetFacts, device: torch.device):
    """(segmenter, label mapping, weights sha256, why not) for the recipe's segmenter. A paper segmenter named
    without a checkpoint whose published weights are not in the torch hub cache leaves mIoU not computed, with
    the sentence saying which file to get; a checkpoint given but absent is an error."""
    name = settings.segmenter or ("smp" if settings.segmenter_ckpt else None)
    if name is None:
        return None, None, None, NO_SEGMENTER
    try:
        segmenter = build_segmenter(name, settings.segmenter_ckpt, device=device)
    except MissingWeightsError as err:
        if settings.segmenter_ckpt is not None:
            raise
        return None, None, None, str(err)
    sha = segmenter_files_sha256(segmenter, settings.segmenter_ckpt)
    return segmenter, LabelMapping(facts, segmenter.facts), sha, None


def _protocol(manifest, settings, info, num, latent, weights, segmenter, mapping, segmenter_sha,
              generator_weights) -> Protocol:
    facts = manifest.dataset
    split = manifest.split(settings.split)
    dontcare = f", don't-care id {facts.dontcare_id}" if facts.dontcare_id is not None else ""
    height, width = info.context.image_size
    return Protocol(
        dataset=facts.name,
        shards_sha256=shards_digest([shard.sha256 for shard in split.shards]),
        split=settings.split,
        num_images=num,
        resolution=(width, height),
        latent=latent,
        seed=settings.seed,
        label_space=f"{facts.name}: {facts.label_nc} classes{dontcare}",
        generator_weights=generator_weights,
        segmenter=(settings.segmenter or "smp") if segmenter else None,
        segmenter_sha256=segmenter_sha,
        segmenter_classes=mapping.num_classes if mapping else None,
        segmenter_procedure=(getattr(segmenter, "procedure", "") or None) if segmenter else None,
        segment_resolution=settings.segment_resolution if segmenter else None,
        label_matching=mapping.describe_matching() if mapping else None,
        ignored=mapping.describe() if mapping else None,
        fid_backend=fid.backend(),
        inception_sha256=weights.sha256,
        kid_subsets=fid.KID_SUBSETS,
        kid_subset_size=fid.kid_subset_size(num),
    )



