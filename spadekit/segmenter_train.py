"""Train a segmenter plugin on prepared shards (`spadekit segmenter train`): any plugin whose object built
with `facts` (an untrained network for the shards' classes) is a `spadekit.segmenter.TrainableSegmenter`;
`smp` by default.

The train split goes through the GAN trainer's loader (spadekit.data.dataset) with preprocess mode
"fixed": photos (bicubic) and labels (nearest) are resized to the segmenter's network size for the stored
photo size (for shards prepared without a resize, the first train photo's) and flipped at random, so the
loss is computed at network resolution. The loss is cross-entropy; the loader maps the
dataset's don't-care id to label_nc, which is then the ignore_index. AdamW, the learning rate decaying
along a cosine to 0 over the run.

After each epoch the val split is segmented as `predict` does for any caller (photos at their stored
size, logits upsampled to it) and scored against the stored labels (don't-care pixels ignored); the scores
are printed and appended to OUT/metrics.jsonl, and OUT/segmenter.pt is written by the segmenter's `save`
(for smp see spadekit_plugins.smp.segmenter for its format; the trainer adds "epoch", "scores" and
"shards": the shards folder and the sha256 of each shard file in its manifest). The same --seed gives the
same weights (on the CPU; CUDA kernels may differ run to run).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from spadekit import registry
from spadekit.bench.scores import ConfusionMatrix, Scores
from spadekit.console import console, progress_bar
from spadekit.data.dataset import ShardDataset, make_loader
from spadekit.data.manifest import Manifest
from spadekit.data.reader import SplitReader
from spadekit.data.sample import Sample
from spadekit.data.transforms import Preprocess
from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_text
from spadekit.segmenter import TrainableSegmenter, build_segmenter

CHECKPOINT_NAME = "segmenter.pt"
METRICS_NAME = "metrics.jsonl"


@dataclass(frozen=True)
class SegmenterTrainJob:
    shards: Path
    out: Path
    # these four set the plugin's options of the same name (size: input_size) where it has them
    arch: str = "unet"
    encoder: str = "resnet18"
    encoder_weights: str | None = None
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    size: int = 256  # shorter side of the network's input
    workers: int = 0
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    force: bool = False
    segmenter: str = "smp"  # the plugin to train
    options: dict[str, Any] = field(default_factory=dict)  # more of its options; override the four above

    def plugin_options(self) -> dict[str, Any]:
        """The options the segmenter plugin is built with."""
        flags = {"arch": self.arch, "encoder": self.encoder, "encoder_weights": self.encoder_weights,
                 "input_size": self.size}
        known = registry.get("segmenters", self.segmenter).options.model_fields
        return {**{key: value for key, value in flags.items() if key in known}, **self.options}


def train_segmenter(job: SegmenterTrainJob) -> Scores:
    """Train, validate after every epoch, save OUT/segmenter.pt; return the last epoch's val scores."""
    manifest = Manifest.load(job.shards)
    options = job.plugin_options()
    checkpoint = _check_job(job, options)
    device = resolve_device(job.device)
    val = SplitReader(job.shards, "val", manifest)
    torch.manual_seed(job.seed)  # the network's initial weights
    segmenter = _build_trainable(job.segmenter, options, device, manifest)
    net_h, net_w = segmenter.network_size(*_stored_size(job.shards, manifest))
    loader = _train_loader(job, (net_h, net_w), device)
    optimizer, schedule = _optimizer(segmenter.model, job.lr, job.epochs * loader.batches_per_epoch)
    ignore_index = _ignore_index(manifest)
    metrics = job.out / METRICS_NAME
    atomic_write_text(metrics, "")  # a new run starts a new log
    console.print(
        f"training {job.segmenter} ({_describe(options)}) on {job.shards} "
        f"({len(loader.dataset)} train, {len(val)} val) at {net_w}x{net_h} on {device} -> {checkpoint}",
        highlight=False,
    )
    with progress_bar("img") as bar:
        task = bar.add_task("training", total=job.epochs * loader.batches_per_epoch * job.batch_size)
        for epoch in range(1, job.epochs + 1):
            start = time.perf_counter()
            loader.set_epoch(epoch - 1)
            segmenter.model.train()
            loss = 0.0
            for step, batch in enumerate(loader, 1):
                value = _train_step(segmenter, batch, optimizer, schedule, ignore_index)
                loss += (value - loss) / step  # running mean
                bar.update(task, advance=job.batch_size, description=f"epoch {epoch}/{job.epochs} loss {value:.3f}")
            scores = evaluate(segmenter, val, job.batch_size)
            _log_epoch(metrics, epoch, loss, scores, time.perf_counter() - start)
            segmenter.save(checkpoint, epoch=epoch, scores=scores.as_dict(), shards=shards_info(job.shards, manifest))
    console.print(f"[green]done:[/] {checkpoint} (metrics in {metrics})", highlight=False)
    return scores


def _build_trainable(name: str, options: dict[str, Any], device: torch.device, manifest: Manifest):
    """An untrained segmenter for the shards' classes, or a SpadekitError when the plugin cannot be trained."""
    segmenter = build_segmenter(name, options=options, device=device, facts=manifest.dataset)
    if not isinstance(segmenter, TrainableSegmenter):
        missing = [m for m in ("model", "network_size", "logits", "save") if not hasattr(segmenter, m)]
        raise SpadekitError(
            f"Segmenter {name!r} cannot be trained by spadekit: it has no {', '.join(missing)} "
            "(see spadekit.segmenter.TrainableSegmenter); use segmenter 'smp' to train a segmenter."
        )
    return segmenter


def _describe(options: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in options.items() if value is not None)


def _ignore_index(manifest: Manifest) -> int:
    """The loader maps the don't-care id to label_nc; -100 (cross_entropy's default) when there is none."""
    facts = manifest.dataset
    return facts.label_nc if facts.dontcare_id is not None else -100


def _log_epoch(metrics: Path, epoch: int, loss: float, scores: Scores, seconds: float) -> None:
    """Append the epoch's line to metrics.jsonl and print it."""
    # val_miou, val_pixel_accuracy: the checkpoint's "scores" keys (MIOU, SEGMENTER_ACCURACY), so the two agree
    record = {"epoch": epoch, "loss": loss, **{f"val_{key}": value for key, value in scores.as_dict().items()}}
    with open(metrics, "a", encoding="utf-8") as f:
        f.write(json.dumps({**record, "seconds": round(seconds, 2)}) + "\n")
    console.print(
        f"epoch {epoch}: loss {loss:.3f}, val mIoU {scores.miou:.3f}, pixel accuracy {scores.pixel_accuracy:.3f} "
        f"({seconds:.0f} s)",
        highlight=False,
    )


def _optimizer(model: torch.nn.Module, lr: float, total_steps: int):
    """AdamW at `lr`, decaying to 0 along a cosine over `total_steps` steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )
    return optimizer, schedule


def _train_step(segmenter: TrainableSegmenter, batch: dict, optimizer, schedule, ignore_index: int) -> float:
    logits = segmenter.logits((batch["image"] + 1) / 2)  # the loader gives [-1, 1], the segmenter takes [0, 1]
    loss = F.cross_entropy(logits, batch["label"][:, 0], ignore_index=ignore_index)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.item()


def _check_job(job: SegmenterTrainJob, options: dict[str, Any]) -> Path:
    """The checkpoint path, after refusing settings that cannot work and an existing segmenter.pt."""
    registry.get("segmenters", job.segmenter).parse_options(options)  # bad options fail before any work
    if job.epochs < 1 or job.batch_size < 1 or job.lr <= 0:
        raise SpadekitError("--epochs and --batch-size must be at least 1 and --lr positive.")
    checkpoint = job.out / CHECKPOINT_NAME
    if checkpoint.exists() and not job.force:
        raise SpadekitError(f"{checkpoint} already exists; pass --force to overwrite it, or choose another --out.")
    job.out.mkdir(parents=True, exist_ok=True)
    return checkpoint


def resolve_device(name: str) -> torch.device:
    """The torch device; auto: the first GPU when there is one, else the CPU; a missing GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SpadekitError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpadekitError(f"--device {name} asks for a GPU, but CUDA is not available here; use --device cpu.")
    return device


def _train_loader(job: SegmenterTrainJob, net_size: tuple[int, int], device: torch.device):
    """The train split resized to the network's input size (h, w), with random horizontal flips."""
    net_h, net_w = net_size
    preprocess = Preprocess(mode="fixed", crop_size=net_w, aspect_ratio=net_w / net_h, flip=True)
    dataset = ShardDataset(job.shards, "train", preprocess, train=True, seed=job.seed)
    if len(dataset) < job.batch_size:
        raise SpadekitError(
            f"--batch-size {job.batch_size} exceeds the {len(dataset)} training samples in {job.shards}; lower it."
        )
    return make_loader(
        dataset, job.batch_size, num_workers=job.workers, shuffle=True, drop_last=True, seed=job.seed, device=device
    )


def _stored_size(shards: Path, manifest: Manifest) -> tuple[int, int]:
    """(h, w) of the prepared photos: the manifest's resize, or the first train sample's size."""
    if manifest.resize is not None:
        width, height = manifest.resize
        return height, width
    return SplitReader(shards, "train", manifest).read(0).label.shape


def evaluate(segmenter, reader: SplitReader, batch_size: int = 8) -> Scores:
    """Scores of `segmenter.predict` on every sample of a split, at the stored size, don't-care ignored."""
    facts = reader.facts
    matrix = ConfusionMatrix(facts.label_nc, ignore_index=facts.dontcare_id)
    for images, labels in _batches(reader, batch_size):
        matrix.update(segmenter.predict(images), labels)
    return matrix.scores()


def _batches(reader: SplitReader, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images in [0, 1], int64 labels) of consecutive samples of the same size, at most batch_size at once."""
    group: list[Sample] = []
    for i in range(len(reader)):
        sample = reader.read(i)
        if group and (len(group) == batch_size or sample.label.shape != group[0].label.shape):
            yield _stack(group)
            group = []
        group.append(sample)
    if group:
        yield _stack(group)


def _stack(samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255
    labels = torch.from_numpy(np.stack([s.label for s in samples]).astype(np.int64))
    return images, labels


def shards_info(shards: Path, manifest: Manifest) -> dict:
    """Which data a segmenter was trained on: the folder and the sha256 of every shard in its manifest."""
    checksums = {s.file: s.sha256 for split in manifest.splits.values() for s in split.shards}
    return {"path": str(Path(shards).resolve()), "dataset": manifest.dataset.name, "sha256": checksums}
