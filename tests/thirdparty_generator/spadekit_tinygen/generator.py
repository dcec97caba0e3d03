"""Three 3x3 convs from the semantics to RGB: the smallest network that honours spadekit's generator contract."""

from __future__ import annotations

import torch
from torch import nn

from spadekit.plugin import GeneratorContext, conv2d


class TinyGenerator(nn.Module):
    def __init__(self, width: int, context: GeneratorContext):
        super().__init__()
        self.encoder, self.z_dim = None, None  # no latent, no image encoder
        self.net = nn.Sequential(
            conv2d(context.semantic_nc, width, 3),
            nn.LeakyReLU(0.2),
            conv2d(width, width, 3),
            nn.LeakyReLU(0.2),
            conv2d(width, 3, 3),
            nn.Tanh(),
        )

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(semantics)
