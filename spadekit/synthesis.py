"""The one synthesis engine: a generator on the fast inference path, label maps in, uint8 images out.

`synth`, `bench`, `serve`, `perf` and `demo` all paint through `Synthesizer`: it loads a run's generator (EMA
or raw weights), prepares it (`spadekit.inference.prepare`: eval, spectral norm folded, channels_last),
resolves the precision for the device, turns label maps (and instance maps, else class borders) into the
generator's semantics, draws latents and runs the forward (`spadekit.inference.run`).

Latents, for a generator with an image encoder (VAE), all from one generator seeded by the caller (`seeded`):
- with a style photo (any size and aspect: the encoder resizes it), the photo's encoding: its mean for one
  sample (the paper's guided synthesis, Figure 1), draws around it (mean + std * noise) for several;
- around the encoding of the paired real image (bench's `encode`, as the official test.py: mu + eps * std);
- otherwise draws from the prior N(0, I) (multi-modal synthesis).
The noise is drawn in every case, so a seed gives the same sequence whichever the source. A generator
without an encoder takes no latent: one image per label map.

Local resampling (OASIS, Section 3.3): a generator with `spatial_latent = True` takes a latent per pixel
(B x z_dim x H x W). `paint_maps(..., regions=...)` keeps the latent the seed gives everywhere outside the
region and draws a new one inside it for each sample, so the image changes in the region only (up to the
receptive field of the convolutions around its border).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from spadekit import inference
from spadekit.checkpoints import latest_checkpoint
from spadekit.data.edges import instance_edges
from spadekit.device import check_precision, resolve_precision
from spadekit.errors import SpadekitError
from spadekit.images import to_uint8
from spadekit.masks import resize_nearest
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.run_info import EMA, RunInfo, load_generator_weights


@dataclass(frozen=True)
class Style:
    """An image's encoding: mean and log-variance of its latent (z_dim each, or B x z_dim for a batch)."""

    mu: Tensor
    logvar: Tensor

    def around(self, noise: Tensor) -> Tensor:
        """Draws around the encoding: mu + noise * std (the paper's reparameterization)."""
        return self.mu + noise * torch.exp(0.5 * self.logvar)


@dataclass(frozen=True)
class LoadedRun:
    """Where a generator came from: its run directory, checkpoint, run.json and weights ("ema" or "raw")."""

    run_dir: Path
    checkpoint: Path
    info: RunInfo
    weights: str


def checked_precision(precision: str, device: torch.device | str) -> str:
    """The precision the generator runs at ("auto": the device's fastest native one); one sentence when the
    device cannot run it."""
    resolved = resolve_precision(precision, torch.device(device))
    check_precision(resolved, torch.device(device), "--precision")
    return resolved


def seeded(seed: int) -> torch.Generator:
    """The CPU random generator of the latent draws, seeded: a command is reproducible."""
    return torch.Generator(device="cpu").manual_seed(seed)


class Synthesizer:
    """A generator, ready to paint: `paint(semantics, z)` -> uint8 images. `load` builds one from a run."""

    def __init__(self, generator: nn.Module, space: LabelSpace, device: torch.device | str = "cpu",
                 precision: str = "auto", run: LoadedRun | None = None, compile: bool = False):
        self.device = torch.device(device)
        self.precision = checked_precision(precision, self.device)
        self.space = space
        self.run = run
        self.generator = inference.prepare(generator, self.device, self.precision, compile)

    @classmethod
    def load(cls, run_dir: Path, checkpoint: Path | None = None, device: torch.device | str = "cpu",
             precision: str = "auto", use_ema: bool = True, compile: bool = False) -> Synthesizer:
        """The run's generator from `checkpoint` (default: the latest), its EMA weights unless `use_ema` is
        False or the checkpoint has none (`compile`: `inference.prepare`'s). The precision is checked before the
        weights are read."""
        checked_precision(precision, device)
        run_dir = Path(run_dir)
        checkpoint = checkpoint or latest_checkpoint(run_dir)
        generator, info, key = load_generator_weights(run_dir, checkpoint, use_ema)
        run = LoadedRun(run_dir, checkpoint, info, "ema" if key == EMA else "raw")
        return cls(generator, info.space, device, precision, run, compile)

    @property
    def info(self) -> RunInfo:
        if self.run is None:
            raise SpadekitError("This synthesizer was built from a bare generator; load it from a run directory.")
        return self.run.info

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images the generator makes."""
        return self.info.context.image_size

    @property
    def takes_latent(self) -> bool:
        return bool(getattr(self.generator, "z_dim", None))

    @property
    def takes_spatial_latent(self) -> bool:
        """The generator takes a latent per pixel (B x z_dim x H x W), so one region can be resampled alone."""
        return self.takes_latent and bool(getattr(self.generator, "spatial_latent", False))

    @property
    def encodes_style(self) -> bool:
        return self.takes_latent and self.generator.encoder is not None

    def latent_mode(self, wanted: str) -> str:
        """What the generator gets in an evaluation: "none" (it takes no z), "prior" (no encoder), else `wanted`
        ("encode" or "prior")."""
        if not self.takes_latent:
            return "none"
        return wanted if self.encodes_style else "prior"

    @torch.no_grad()
    def encode(self, images: Tensor) -> Style:
        """Images B x 3 x H x W in [-1, 1] -> their encodings (B x z_dim)."""
        mu, logvar = self.generator.encoder(images)
        return Style(mu.float(), logvar.float())

    def encode_style(self, photo: np.ndarray) -> Style:
        """uint8 H x W x 3 photo of any size -> its latent's mean and log-variance."""
        if not self.encodes_style:
            raise SpadekitError(f"Run {self.run.run_dir}'s generator ({self.info.generator}) has no image encoder, "
                                "so it cannot take a style photo; drop --style, or train with model.use_vae = true.")
        image = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].to(self.device)
        style = self.encode(image.float() / 127.5 - 1)
        return Style(style.mu[0], style.logvar[0])

    def latents(self, n: int, style: Style | None, rng: torch.Generator) -> Tensor | None:
        """n latents (n x z_dim): the style's mean (n = 1) or draws around it, else draws from the prior."""
        if not self.takes_latent:
            return None
        noise = self._noise(n, rng)
        if style is None:
            return noise
        return style.mu[None] if n == 1 else style.around(noise)

    def paired_latents(self, real: Tensor, rng: torch.Generator) -> Tensor:
        """One draw around the encoding of each real image (B x 3 x H x W in [-1, 1]), as the official test.py."""
        noise = self._noise(real.shape[0], rng)
        return self.encode(real).around(noise)

    def _noise(self, n: int, rng: torch.Generator) -> Tensor:
        return torch.randn(n, self.generator.z_dim, generator=rng).to(self.device)

    def semantics(self, labels: list[np.ndarray], instances: list[np.ndarray | None]) -> Tensor:
        """Label maps (class ids, the don't-care id allowed) and optional instance maps of any size -> the
        generator's input at its size. Without an instance map the label map gives the edges (class borders)."""
        facts, size = self.info.facts, self.size
        label = torch.stack([torch.from_numpy(resize_nearest(m, size)).long() for m in labels])[:, None].to(self.device)
        if facts.dontcare_id is not None:
            label = torch.where(label == facts.dontcare_id, facts.label_nc, label)
        instance = torch.stack([
            torch.from_numpy(resize_nearest(inst, size)) if inst is not None else lab[0].cpu()
            for inst, lab in zip(instances, label, strict=True)
        ])[:, None].to(self.device)
        return to_semantics(label, instance_edges(instance), self.space)

    def forward(self, semantics: Tensor, z: Tensor | None) -> Tensor:
        """The prepared generator's fp32 images in [-1, 1] (what `perf` times)."""
        return inference.run(self.generator, semantics, z, self.precision)

    def paint(self, semantics: Tensor, z: Tensor | None) -> Tensor:
        """uint8 images B x 3 x H x W (CPU) for B semantics and B latents (or None)."""
        return to_uint8(self.forward(semantics, z))

    def paint_maps(self, labels: list[np.ndarray], instances: list[np.ndarray | None], n: int,
                   style: Style | None, rng: torch.Generator, regions: list[np.ndarray] | None = None,
                   region_rng: torch.Generator | None = None) -> Tensor:
        """uint8 images (len(labels) * n) x 3 x H x W: n samples per label map, in the order maps x samples.
        With `regions` (a boolean map per label map, any size), every sample of a map keeps the latent `rng`
        gives the map (its first draw) outside the region and gets a new draw inside it, from `region_rng`
        (default: `rng`, after the first draw)."""
        semantics = self.semantics(labels, instances).repeat_interleave(n, 0)
        if regions is not None:
            return self.paint(semantics, self.resampled_latents(regions, n, style, rng, region_rng or rng))
        latents = [self.latents(n, style, rng) for _ in labels]
        return self.paint(semantics, None if latents[0] is None else torch.cat(latents))

    def resampled_latents(self, regions: list[np.ndarray], n: int, style: Style | None, rng: torch.Generator,
                          region_rng: torch.Generator) -> Tensor:
        """(len(regions) * n) x z_dim x H x W: per region map, its base draw outside, n new draws inside."""
        latents = []
        for region in regions:
            base = self.latents(1, style, rng)[0]
            latents += [self.latent_map(base, [(region, draw)]) for draw in self.latents(n, style, region_rng)]
        return torch.stack(latents)

    def latent_map(self, base: Tensor, regions: list[tuple[np.ndarray, Tensor]]) -> Tensor:
        """z_dim x H x W at the generator's size: `base` (z_dim) everywhere, then each region's own latent
        (a boolean map of any size, z_dim) inside it, in order."""
        if not self.takes_spatial_latent:
            name = self.info.generator if self.run is not None else type(self.generator).__name__
            raise SpadekitError(
                f"This run's generator ({name}) takes one latent per image, so a region cannot be resampled alone; "
                "local resampling needs a generator with a latent per pixel, such as oasis."
            )
        height, width = self.size
        latent = base[:, None, None].expand(-1, height, width)
        for region, z in regions:
            inside = torch.from_numpy(resize_nearest(region, self.size)).to(self.device)
            latent = torch.where(inside, z[:, None, None], latent)
        return latent

    @torch.no_grad()
    def paint_batch(self, batch: dict, latent: str, rng: torch.Generator) -> Tensor:
        """uint8 images for a finished evaluation batch ("label", "edge", "image"); `latent` from `latent_mode`."""
        semantics = to_semantics(batch["label"], batch["edge"], self.space)
        real = batch["image"]
        z = self.paired_latents(real, rng) if latent == "encode" else self.latents(real.shape[0], None, rng)
        return self.paint(semantics, z)
