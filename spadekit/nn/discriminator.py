"""The multi-scale PatchGAN discriminator (pix2pixHD; official `MultiscaleDiscriminator`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.nn.layers import conv2d
from spadekit.nn.norms import normalized_conv

KERNEL, PADDING = 4, 2  # official: kw=4, padw=ceil((kw-1)/2)


class NLayerDiscriminator(nn.Module):
    """A PatchGAN: a stride-2 conv, `n_layers - 1` normalized convs (the last one stride 1, as the official
    code since 2019-05-20), and a 1-channel conv. `forward` returns every layer's output: the last is the
    patch score, the others feed the feature-matching loss."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 4, norm: str = "spectralinstance"):
        super().__init__()
        self.n_layers = n_layers
        self.model0 = nn.Sequential(conv2d(input_nc, ndf, KERNEL, 2, PADDING), nn.LeakyReLU(0.2))
        nf = ndf
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            conv = normalized_conv(conv2d(nf_prev, nf, KERNEL, stride, PADDING), norm)
            self.add_module(f"model{n}", nn.Sequential(conv, nn.LeakyReLU(0.2)))
        self.add_module(f"model{n_layers}", nn.Sequential(conv2d(nf, 1, KERNEL, 1, PADDING)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for n in range(self.n_layers + 1):
            x = getattr(self, f"model{n}")(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """`num_D` PatchGANs on the input downsampled by 1, 2, 4, ... (3x3 average pooling, stride 2).
    Returns one list of layer outputs per scale."""

    def __init__(self, input_nc: int, num_D: int = 2, ndf: int = 64, n_layers: int = 4,
                 norm: str = "spectralinstance"):
        super().__init__()
        self.num_D = num_D
        for i in range(num_D):
            self.add_module(f"discriminator_{i}", NLayerDiscriminator(input_nc, ndf, n_layers, norm))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for i in range(self.num_D):
            results.append(getattr(self, f"discriminator_{i}")(x))
            if i + 1 < self.num_D:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        return results
