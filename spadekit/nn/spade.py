"""Spatially-adaptive denormalization (paper Section 3, Eq. 1 and Figure 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.nn.layers import conv2d
from spadekit.nn.norms import param_free_norm


class SPADE(nn.Module):
    """Normalize `x` without affine parameters, then modulate it with a per-pixel scale gamma and bias beta
    that a small conv net computes from the segmentation map: `norm(x) * (1 + gamma) + beta`.

    Submodule names follow the official code (`param_free_norm`, `mlp_shared.0`, `mlp_gamma`, `mlp_beta`),
    so its checkpoints map onto this class key for key.
    """

    def __init__(self, norm_nc: int, label_nc: int, norm: str = "sync_batch", kernel_size: int = 3,
                 hidden: int = 128):
        super().__init__()
        if kernel_size not in (1, 3, 5):
            raise ValueError(f"SPADE kernel size must be 1, 3 or 5 (paper Table 4), not {kernel_size}")
        self.param_free_norm = param_free_norm(norm, norm_nc)
        self.mlp_shared = nn.Sequential(conv2d(label_nc, hidden, kernel_size), nn.ReLU())
        self.mlp_gamma = conv2d(hidden, norm_nc, kernel_size)
        self.mlp_beta = conv2d(hidden, norm_nc, kernel_size)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        actv = self.mlp_shared(resize_segmap(segmap, x.shape[-2:]))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


def resize_segmap(segmap: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Nearest resize of the one-hot semantics to a feature map's size (a no-op when it already fits)."""
    if tuple(segmap.shape[-2:]) == tuple(size):
        return segmap
    return F.interpolate(segmap, size=tuple(size), mode="nearest")
