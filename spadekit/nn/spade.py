"""Spatially-adaptive denormalization (paper Section 3, Eq. 1 and Figure 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.nn.layers import conv2d
from spadekit.nn.norm_names import ParamFreeNorm
from spadekit.nn.norms import param_free_norm


class SPADE(nn.Module):
    """Normalize `x` without affine parameters, then modulate it with a per-pixel scale gamma and bias beta
    that a small conv net computes from the segmentation map: `norm(x) * (1 + gamma) + beta` (Eq. 1).

    Submodule names follow the official code (`param_free_norm`, `mlp_shared.0`, `mlp_gamma`, `mlp_beta`),
    so its checkpoints map onto this class key for key.

    `one_hot_nc`: how many leading channels of the segmap are one-hot per pixel (`LabelSpace.one_hot_nc`).
    The block itself does not use it; the inference fast path (`spadekit.nn.spade_fast`) does.
    """

    def __init__(self, norm_nc: int, label_nc: int, norm: ParamFreeNorm = "sync_batch", kernel_size: int = 3,
                 hidden: int = 128, one_hot_nc: int | None = None):
        super().__init__()
        if one_hot_nc is not None and not 0 < one_hot_nc <= label_nc:
            raise ValueError(f"one_hot_nc must lie in [1, {label_nc}], not {one_hot_nc}")
        if kernel_size not in (1, 3, 5):
            raise ValueError(f"SPADE kernel size must be 1, 3 or 5 (paper Table 4), not {kernel_size}")
        self.param_free_norm = param_free_norm(norm, norm_nc)
        self.mlp_shared = nn.Sequential(conv2d(label_nc, hidden, kernel_size), nn.ReLU())
        self.mlp_gamma = conv2d(hidden, norm_nc, kernel_size)
        self.mlp_beta = conv2d(hidden, norm_nc, kernel_size)
        self.one_hot_nc = one_hot_nc

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        segmap = resize_segmap(segmap, x.shape[-2:])
        actv = self.mlp_shared(segmap)
        gamma, beta = self.mlp_gamma(actv), self.mlp_beta(actv)
        return normalized * (1 + gamma) + beta


def resize_segmap(segmap: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Nearest resize of the one-hot semantics (or of any ... x H x W map, integer label maps included) to a
    feature map's size (a no-op when it already fits); every map picks the same pixels."""
    (h, w), (out_h, out_w) = segmap.shape[-2:], tuple(size)
    if (h, w) == (out_h, out_w):
        return segmap
    if h % out_h == 0 and w % out_w == 0:  # nearest picks pixel i*f: a strided view, no 48 MB copy at 256x256
        return segmap[..., :: h // out_h, :: w // out_w]
    if not segmap.is_floating_point():  # label ids (exact in double)
        return F.interpolate(segmap.double(), size=(out_h, out_w), mode="nearest").to(segmap.dtype)
    return F.interpolate(segmap, size=(out_h, out_w), mode="nearest")
