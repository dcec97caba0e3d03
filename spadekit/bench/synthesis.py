"""Generating the evaluation split: its label maps at the generation resolution, through a run's generator.

The split is read in shard order (the first `num` samples) with the official test-time geometry: image and
label map resized straight to the generation resolution (`Preprocess(mode="fixed")`: bicubic images,
nearest labels and instance maps), no crop, no flip. A generator with an image encoder gets its latent
`z` either around the encoding of the paired real image (`encode`, as the official test.py) or from the
prior N(0, I) (`prior`); the draws come from a generator seeded once, so a bench is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from spadekit import inference
from spadekit.config import Latent
from spadekit.data.dataset import ShardDataset, finish
from spadekit.data.transforms import Preprocess
from spadekit.images import to_uint8
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.run_info import RunInfo


def eval_dataset(shards: Path, split: str, info: RunInfo, num: int | None) -> Subset:
    """The first `num` samples of the split (all when None), at the run's generation resolution."""
    geometry = Preprocess(mode="fixed", crop_size=info.crop_size, aspect_ratio=info.aspect_ratio, flip=False)
    dataset = ShardDataset(shards, split, geometry, train=False)
    return Subset(dataset, range(min(num or len(dataset), len(dataset))))


def eval_batches(dataset: Subset, batch_size: int, workers: int, device: torch.device) -> Iterator[dict]:
    """Finished batches (see `spadekit.data.dataset.finish`) plus "image_uint8", the real images as stored."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    for batch in loader:
        yield {**finish(batch, device), "image_uint8": batch["image"]}


@dataclass
class Synthesizer:
    """A generator on the fast inference path (`spadekit.inference`) and how it draws latents."""

    generator: nn.Module
    space: LabelSpace
    latent: Latent
    precision: str
    device: torch.device
    seed: int = 0

    def __post_init__(self):
        self.generator = inference.prepare(self.generator, self.device)
        self._rng = torch.Generator(device="cpu").manual_seed(self.seed)

    @property
    def latent_mode(self) -> str:
        """What the generator gets: "none" (it takes no z), "encode" or "prior"."""
        if not getattr(self.generator, "z_dim", None):
            return "none"
        return "prior" if self.generator.encoder is None else self.latent

    @torch.no_grad()
    def __call__(self, batch: dict) -> Tensor:
        """uint8 images B x 3 x H x W (on the CPU) for a finished batch."""
        semantics = to_semantics(batch["label"], batch["edge"], self.space)
        return to_uint8(inference.run(self.generator, semantics, self._draw_z(batch["image"]), self.precision))

    def _draw_z(self, real: Tensor) -> Tensor | None:
        mode = self.latent_mode
        if mode == "none":
            return None
        noise = torch.randn(real.shape[0], self.generator.z_dim, generator=self._rng).to(real.device)
        if mode == "prior":
            return noise
        mu, logvar = self.generator.encoder(real)  # official reparameterize: mu + eps * std
        return mu + noise * torch.exp(0.5 * logvar)
