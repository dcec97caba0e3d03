"""A cascaded refinement network (Chen & Koltun, "Photographic Image Synthesis with Cascaded Refinement
Networks", ICCV 2017), built only from spadekit's public API, as a third-party plugin would be.

Module i works at (start_size * 2**i) pixels high. Its input is the label map downsampled to that size by
area averaging (CRN's `resize_area`: a pixel holds the fraction of each class) concatenated with the
bilinearly upsampled features of module i-1 (the first module sees the label map alone). Each module is two
3x3 convs, each followed by layer normalization and LeakyReLU(0.2); a 1x1 conv maps the last module's
features to RGB, squashed by tanh into [-1, 1] as spadekit's generators are (CRN's output is unbounded).
CRN's diversity loss over several outputs per input is not part of this plugin: it makes one image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.plugin import GeneratorContext, SpadekitError, conv2d
from spadekit_plugins.crn.spec import CRNOptions


def chen_koltun_width(height: int) -> int:
    """CRN's feature channels at a resolution: 1024 up to 64 px high, 512 at 128 and 256, 128 at 512, 32 above."""
    if height <= 64:
        return 1024
    if height <= 256:
        return 512
    return 128 if height <= 512 else 32


class RefinementModule(nn.Sequential):
    """Conv3x3, layer norm, LeakyReLU(0.2), twice. Layer norm is GroupNorm with one group: normalization
    over (C, H, W) of each sample, with a gain and bias per channel, as CRN's `layer_norm`."""

    def __init__(self, cin: int, width: int, spectral: bool):
        super().__init__(
            conv2d(cin, width, 3, spectral=spectral),
            nn.GroupNorm(1, width),
            nn.LeakyReLU(0.2),
            conv2d(width, width, 3, spectral=spectral),
            nn.GroupNorm(1, width),
            nn.LeakyReLU(0.2),
        )


class CRNGenerator(nn.Module):
    """Refinement modules from `start_size` pixels high to the image height, then a 1x1 conv to RGB."""

    def __init__(self, options: CRNOptions, context: GeneratorContext):
        super().__init__()
        self.options = options
        self.encoder, self.z_dim = None, None
        self.sizes = cascade_sizes(options.start_size, context)
        widths = options.widths or [chen_koltun_width(h) for h, _ in self.sizes]
        if len(widths) != len(self.sizes):
            heights = ", ".join(str(h) for h, _ in self.sizes)
            raise SpadekitError(
                f"model.widths has {len(widths)} entries but this cascade has {len(self.sizes)} modules ({heights} px "
                "high); give one width per module, coarse to fine, or change model.start_size."
            )
        label_nc = context.semantic_nc
        inputs = [label_nc] + [label_nc + w for w in widths[:-1]]
        self.cascade = nn.ModuleList(
            RefinementModule(cin, w, options.spectral) for cin, w in zip(inputs, widths, strict=True)
        )
        self.to_rgb = conv2d(widths[-1], 3, 1)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        features = None
        for size, module in zip(self.sizes, self.cascade, strict=True):
            layout = semantics if semantics.shape[-2:] == size else F.interpolate(semantics, size=size, mode="area")
            if features is not None:
                upsampled = F.interpolate(features, size=size, mode="bilinear", align_corners=False)
                layout = torch.cat([layout, upsampled], 1)
            features = module(layout)
        return torch.tanh(self.to_rgb(features))


def cascade_sizes(start_size: int, context: GeneratorContext) -> list[tuple[int, int]]:
    """(height, width) of each module, coarse to fine: the image size halved until `start_size` pixels high."""
    height, width = context.image_size
    steps = max((height // start_size).bit_length() - 1, 0)
    if start_size << steps != height or width % (1 << steps):
        raise SpadekitError(
            f"The crn generator cannot make {width}x{height} images from model.start_size = {start_size}: the "
            f"height must be start_size times a power of two and the width divisible by as much; change "
            "model.start_size or data.crop_size / data.aspect_ratio."
        )
    return [(height >> i, width >> i) for i in range(steps, -1, -1)]
