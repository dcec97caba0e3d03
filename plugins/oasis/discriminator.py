"""The OASIS discriminator (reference models/discriminator.py `OASIS_Discriminator`): a U-Net that segments an
image (only the image: D never sees the label map) into N+1 classes per pixel, channel 0 "fake" and channel
1 + c our one-hot class c.

Encoder: num_res_blocks residual blocks, each halving the size (the first without a leading activation, its
shortcut pooled before its 1x1 conv). Decoder: num_res_blocks residual blocks, each doubling the size, every one
after the first taking the matching encoder output concatenated in front of the previous block's; then a 1x1
conv to N+1 channels. Submodule names are the reference's (`body_down.i`, `body_up.i`, `conv1.k`, `conv2.1`,
`conv_s`, `layer_up_last`; `conv1`/`conv2` are Sequentials whose index k is the reference's: the conv after the
leaky ReLU and, going up, the upsampling). The reference builds its decoder for exactly 6 blocks (it indexes
the width table from its end); here the decoder mirrors whatever encoder num_res_blocks builds, which is the
reference's network at 6.
"""

from __future__ import annotations

import torch
from torch import nn

from spadekit.plugin import GeneratorContext, SpadekitError
from spadekit_plugins.oasis.layers import conv
from spadekit_plugins.oasis.spec import D_WIDTHS, OasisOptions


class OASISDiscriminator(nn.Module):
    def __init__(self, options: OasisOptions, context: GeneratorContext):
        super().__init__()
        n, c = options.num_res_blocks, options.channels_D
        height, width = context.image_size
        if height % 2**n or width % 2**n:
            raise SpadekitError(
                f"The oasis discriminator cannot take {width}x{height} images: its {n} downsamplings need sides that "
                f"are multiples of {2 ** n}; change data.crop_size / data.aspect_ratio or model.num_res_blocks."
            )
        self.num_classes = context.space.one_hot_nc  # N; the output has N + 1 channels, 0 being "fake"
        widths = [3] + [w * c for w in D_WIDTHS[:n]]
        sn = options.spectral
        self.body_down = nn.ModuleList(
            ResidualBlockD(widths[i], widths[i + 1], sn, up=False, first=i == 0) for i in range(n)
        )
        ups = [ResidualBlockD(widths[n], widths[n - 1], sn, up=True)]
        ups += [ResidualBlockD(2 * widths[n - i], widths[n - i - 1], sn, up=True) for i in range(1, n - 1)]
        ups.append(ResidualBlockD(2 * widths[1], c, sn, up=True))
        self.body_up = nn.ModuleList(ups)
        self.layer_up_last = conv(c, self.num_classes + 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Images B x 3 x H x W -> logits B x (N+1) x H x W."""
        x = image
        skips = []
        for block in self.body_down:
            x = block(x)
            skips.append(x)
        x = self.body_up[0](x)
        for i in range(1, len(self.body_down)):
            x = self.body_up[i](torch.cat((skips[-i - 1], x), 1))
        return self.layer_up_last(x)


class ResidualBlockD(nn.Module):
    """Reference `residual_block_D` (up_or_down 1 = `up`, -1 = not `up`)."""

    def __init__(self, fin: int, fout: int, spectral: bool, up: bool, first: bool = False):
        super().__init__()
        self.up, self.first = up, first
        self.learned_shortcut = fin != fout
        conv1 = conv(fin, fout, 3, spectral=spectral)
        if first:
            self.conv1 = nn.Sequential(conv1)
        elif up:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2), conv1)
        else:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), conv1)
        self.conv2 = nn.Sequential(nn.LeakyReLU(0.2), conv(fout, fout, 3, spectral=spectral))
        if self.learned_shortcut:
            self.conv_s = conv(fin, fout, 1, spectral=spectral)
        self.sampling = nn.Upsample(scale_factor=2) if up else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = self.conv2(self.conv1(x))
        if not self.up:
            dx = self.sampling(dx)
        return self.shortcut(x) + dx

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.first or self.up:  # the first block pools before its 1x1 conv, the up blocks upsample before it
            x = self.sampling(x)
            return self.conv_s(x) if self.learned_shortcut else x
        x = self.conv_s(x) if self.learned_shortcut else x
        return self.sampling(x)
