"""DrnSegmenter: fyu/drn's DRN-D-105 Cityscapes network behind spadekit's segmenter contract.

`predict` follows segment.py's test procedures, which read 8-bit PNGs:
- the photos become uint8 again ((x * 255).round(), what the reference reads), then ToTensor's `/ 255` in
  float32 and Normalize with the mean/std of fyu/drn's `datasets/cityscapes/info.json` (full precision);
- single-scale (`test`, the default): no resize; the network's log-probabilities are 8 * ceil(side / 8)
  large and lie on the image from the top-left, so they are cropped to the image;
- multi-scale (`test_ms`, `--ms`): the uint8 image at scale 1 and resized with PIL bicubic to
  (int(w * s), int(h * s)) for s in 0.5, 0.75, 1.25, 1.5, 1.75; each output's log-probabilities are resized to
  the image with PIL bilinear on float32 planes (`resize_4d_tensor`; skipped when the size already matches,
  and not cropped first: an output overhanging a side that is not a multiple of 8 is squeezed, as the
  reference does), summed in float32 in that order;
- then, only if `size` differs from the image, the log-probabilities are resized bilinearly (align_corners=False)
  to `size`; argmax over the classes (first maximum on ties, like torch.max / numpy.argmax).
Float32 throughout unless the caller runs it under autocast; without gradients, in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from spadekit.plugin import cityscapes_trainid_facts, find_weights, load_into, read_state_dict
from spadekit_plugins.drn.network import DRNSeg
from spadekit_plugins.drn.spec import WEIGHTS_FILE, WEIGHTS_URL

# fyu/drn datasets/cityscapes/info.json
INFO_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
INFO_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
MS_SCALES = (0.5, 0.75, 1.25, 1.5, 1.75)  # segment.test_seg, after the scale-1 image
SINGLE_SCALE = ("fyu/drn single-scale test: RGB/255, Cityscapes info.json mean/std, no resize, 8x bilinear "
                "ConvTranspose, crop to the image")
MULTI_SCALE = ("fyu/drn multi-scale test (--ms): scales 1, 0.5, 0.75, 1.25, 1.5, 1.75 (PIL bicubic of the uint8 "
               "image, int(side*s)), RGB/255, info.json mean/std, log-probabilities PIL-bilinear to the image, summed")


class DrnSegmenter:
    file_id_offset = 0

    def __init__(self, model: DRNSeg, multi_scale: bool = False, device: torch.device | str | None = None):
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device).eval()
        self.multi_scale = multi_scale
        self.facts = cityscapes_trainid_facts()
        self.procedure = MULTI_SCALE if multi_scale else SINGLE_SCALE
        self._mean = torch.tensor(INFO_MEAN, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(INFO_STD, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(cls, checkpoint: Path | str | None, multi_scale: bool = False, device=None) -> DrnSegmenter:
        """The published weights, loaded strictly (num_batches_tracked may be present or not)."""
        path = find_weights(checkpoint, WEIGHTS_FILE, WEIGHTS_URL, what="DRN-D-105 (fyu/drn, Cityscapes)")
        model = DRNSeg()
        load_into(model, read_state_dict(path), path)
        segmenter = cls(model, multi_scale=multi_scale, device=device)
        segmenter.weight_files = [path]
        return segmenter

    def normalize(self, pixels: Tensor) -> Tensor:
        """ToTensor then Normalize of data_transforms: uint8 B x 3 x H x W -> float32 / 255, (x - mean) / std."""
        x = pixels.to(self.device).float().div(255)
        return (x - self._mean) / self._std

    @torch.no_grad()
    def predict(self, images: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """int64 trainIds B x h x w at `size` (default: the input size), on the images' device."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape B x 3 x H x W, got {tuple(images.shape)}")
        height, width = images.shape[-2:]
        size = tuple(size) if size is not None else (height, width)
        if images.shape[0] == 0:
            return torch.zeros((0, *size), dtype=torch.int64, device=images.device)
        self.model.eval()
        pixels = to_uint8(images)
        logp = self.multi_scale_logp(pixels) if self.multi_scale else self.single_scale_logp(pixels)
        if tuple(logp.shape[-2:]) != size:
            logp = F.interpolate(logp, size=size, mode="bilinear", align_corners=False)
        return logp.argmax(1).to(images.device)

    def single_scale_logp(self, pixels: Tensor) -> Tensor:
        """segment.test: the log-probabilities of the image as it is, cropped to it (top-left)."""
        height, width = pixels.shape[-2:]
        return self.model(self.normalize(pixels))[:, :, :height, :width]

    def multi_scale_logp(self, pixels: Tensor) -> Tensor:
        """segment.test_ms: the float32 sum of each scale's log-probabilities resized to the image."""
        height, width = pixels.shape[-2:]
        photos = [Image.fromarray(p.permute(1, 2, 0).cpu().numpy()) for p in pixels]
        total = pil_resize_planes(self.model(self.normalize(pixels)), width, height)
        for s in MS_SCALES:
            scaled = [photo.resize((int(width * s), int(height * s)), Image.Resampling.BICUBIC) for photo in photos]
            batch = torch.from_numpy(np.stack([np.asarray(im) for im in scaled])).permute(0, 3, 1, 2)
            total = total + pil_resize_planes(self.model(self.normalize(batch)), width, height)
        return torch.from_numpy(total).to(self.device)


def to_uint8(images: Tensor) -> Tensor:
    """The 8-bit pixels the reference reads from PNG: (x * 255).round(), clamped to 0..255."""
    return (images.detach().float() * 255).round().clamp(0, 255).to(torch.uint8)


def pil_resize_planes(logp: Tensor, width: int, height: int) -> np.ndarray:
    """segment.resize_4d_tensor: each B x C plane as a PIL float image resized bilinearly to width x height;
    returned as it is when it already has that size."""
    planes = logp.float().cpu().numpy()
    if planes.shape[-2:] == (height, width):
        return planes
    out = np.empty((*planes.shape[:2], height, width), dtype=np.float32)
    for b in range(planes.shape[0]):
        for c in range(planes.shape[1]):
            out[b, c] = np.asarray(Image.fromarray(planes[b, c]).resize((width, height), Image.Resampling.BILINEAR))
    return out
