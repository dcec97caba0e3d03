"""The VAE image encoder for multi-modal and style-guided synthesis (paper Section 3 and Figure 14)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.nn.layers import conv2d, linear
from spadekit.nn.norms import normalized_conv

ENCODER_SIZE = 256  # every image is resized to this square first, so any size and aspect works
NUM_LAYERS = 6  # 256 / 2**6 = 4: a 4x4 map feeds fc_mu and fc_var


class ConvEncoder(nn.Module):
    """Six stride-2 3x3 convs (64, 128, 256, 512, 512, 512 channels for ndf=64) with instance norm and
    spectral norm, then `fc_mu` and `fc_var` to a `z_dim` latent. Unlike the official encoder it accepts
    any image size (not only crops >= 256) and any z_dim (the official one hardcodes 256). Layer names
    match the official `layer1..layer6`, `fc_mu`, `fc_var`."""

    def __init__(self, ndf: int = 64, z_dim: int = 256, norm: str = "spectralinstance"):
        super().__init__()
        widths = [3, ndf, ndf * 2, ndf * 4, ndf * 8, ndf * 8, ndf * 8]
        for i in range(NUM_LAYERS):
            conv = conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1)
            self.add_module(f"layer{i + 1}", normalized_conv(conv, norm))
        features = widths[-1] * (ENCODER_SIZE >> NUM_LAYERS) ** 2
        self.fc_mu = linear(features, z_dim)
        self.fc_var = linear(features, z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image in [-1, 1], Bx3xHxW of any size -> (mu, logvar), each B x z_dim."""
        x = image
        if tuple(x.shape[-2:]) != (ENCODER_SIZE, ENCODER_SIZE):
            x = F.interpolate(x, size=(ENCODER_SIZE, ENCODER_SIZE), mode="bilinear", align_corners=False)
        for i in range(NUM_LAYERS):
            x = getattr(self, f"layer{i + 1}")(x if i == 0 else F.leaky_relu(x, 0.2))
        x = F.leaky_relu(x, 0.2).flatten(1)
        return self.fc_mu(x), self.fc_var(x)
