"""Synthesis from painted masks with a trained run: the engine behind `spadekit synth` (and the painting page).

`Painter` holds a run's generator on the fast inference path (`spadekit.inference`) and turns label maps
into images. Latents, for a generator with an image encoder (VAE):
- with a style photo (any size and aspect: the encoder resizes it), the photo's encoding: its mean for one
  sample (the paper's guided synthesis, Figure 1), draws around it (mean + std * noise) for several;
- without one, draws from the prior N(0, I) (multi-modal synthesis);
all from one generator seeded by `seed`, in the order masks x samples, so a command is reproducible.
A generator without an encoder takes no latent: one image per mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from spadekit import inference
from spadekit.checkpoints import latest_checkpoint
from spadekit.data.edges import instance_edges
from spadekit.device import check_precision, resolve_precision
from spadekit.errors import SpadekitError
from spadekit.images import to_uint8
from spadekit.masks import resize_nearest
from spadekit.nn.semantics import to_semantics
from spadekit.run_info import RunInfo, load_generator

RUNS = Path("runs")


@dataclass(frozen=True)
class Style:
    """A style photo's encoding: mean and log-variance of its latent, each z_dim."""

    mu: Tensor
    logvar: Tensor


class Painter:
    """A run's generator, ready to paint: `paint(labels, instances, z)` -> uint8 images."""

    def __init__(self, run_dir: Path, checkpoint: Path | None = None, device: torch.device | str = "cpu",
                 precision: str = "auto"):
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        check_precision(self.precision, self.device, "--precision")
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint or latest_checkpoint(self.run_dir)
        generator, self.info = load_generator(self.run_dir, self.checkpoint)
        self.generator = inference.prepare(generator, self.device)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images the generator makes."""
        return self.info.context.image_size

    @property
    def takes_latent(self) -> bool:
        return bool(getattr(self.generator, "z_dim", None))

    @property
    def encodes_style(self) -> bool:
        return self.takes_latent and self.generator.encoder is not None

    @torch.no_grad()
    def encode_style(self, photo: np.ndarray) -> Style:
        """uint8 H x W x 3 photo of any size -> its latent's mean and log-variance."""
        if not self.encodes_style:
            raise SpadekitError(f"Run {self.run_dir}'s generator ({self.info.generator}) has no image encoder, so "
                                "it cannot take a style photo; drop --style, or train with model.use_vae = true.")
        image = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].to(self.device)
        mu, logvar = self.generator.encoder(image.float() / 127.5 - 1)
        return Style(mu[0].float(), logvar[0].float())

    def latents(self, n: int, style: Style | None, rng: torch.Generator) -> Tensor | None:
        """n latents (n x z_dim): the style's mean (n = 1) or draws around it, else draws from the prior."""
        if not self.takes_latent:
            return None
        noise = torch.randn(n, self.generator.z_dim, generator=rng).to(self.device)
        if style is None:
            return noise
        if n == 1:
            return style.mu[None]
        return style.mu + noise * torch.exp(0.5 * style.logvar)

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
        return to_semantics(label, instance_edges(instance), self.info.space)

    def paint(self, semantics: Tensor, z: Tensor | None) -> Tensor:
        """uint8 images B x 3 x H x W (CPU) for B semantics and B latents (or None)."""
        return to_uint8(inference.run(self.generator, semantics, z, self.precision))


def most_recent_run(root: Path = RUNS) -> Path:
    """The run under `root` whose latest checkpoint was written last."""
    candidates = [(latest_checkpoint(p), p) for p in Path(root).iterdir() if (p / "run.json").is_file()] \
        if Path(root).is_dir() else []
    candidates = [(ckpt.stat().st_mtime, run) for ckpt, run in candidates if ckpt is not None]
    if not candidates:
        raise SpadekitError(f"No trained run under ./{root} (a folder with run.json and a checkpoint); pass "
                            "--run RUN_DIR or train one with `spadekit train RECIPE`.")
    return max(candidates)[1]


def run_of_checkpoint(checkpoint: Path) -> Path:
    """RUN_DIR of RUN_DIR/checkpoints/step_*.pt (the run.json beside it describes the generator)."""
    run_dir = Path(checkpoint).resolve().parent.parent
    if not Path(checkpoint).is_file():
        raise SpadekitError(f"Checkpoint {checkpoint} does not exist; check the path.")
    RunInfo.load(run_dir)  # a clear error when the checkpoint is not inside a run directory
    return run_dir
