"""DeepLabV2-ResNet101 with multi-scale inputs (MSC), as kazuto1011/deeplab-pytorch builds it.

Written from a reading of that repository's `libs/models/{resnet,deeplabv2,msc}.py`; the module and attribute
names are the reference's, so that `MSC.state_dict()` has the keys of the published
`deeplabv2_resnet101_msc-cocostuff164k-100000.pth` (`base.layer1.conv1.conv.weight`,
`base.layer2.block1.reduce.bn.running_mean`, `base.layer2.block1.shortcut.conv.weight`, `base.aspp.c0.bias`, ...).

What matters for its predictions (each differs from torchvision's ResNet or from other DeepLab ports):
- stem: 7x7/2 conv + BN + ReLU, then a 3x3/2 max-pool with padding 1 and ceil_mode=True;
- bottlenecks are "MSRA"/caffe style: a downsampling block's stride sits in its first 1x1 ("reduce") conv and in
  its 1x1 "shortcut" projection; the 3x3 conv has stride 1, padding = dilation;
- layer3 downsamples (stride 2); layer4 and layer5 keep the resolution and dilate their 3x3 convs by 2 and 4:
  output stride 8;
- batch norm: eps 1e-5 (used in eval mode, with the stored running statistics);
- ASPP: four parallel 3x3 convs with bias (dilation = padding = 6, 12, 18, 24) straight to the class logits,
  summed (no ReLU, no BN, no concatenation);
- MSC at test time: logits of the input, and of the input resized by F.interpolate(scale_factor=0.5 and 0.75,
  bilinear, align_corners=False), the latter resized to the first's size (bilinear, align_corners=False), fused
  by the element-wise max.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

N_CLASSES = 182  # COCO-Stuff 164k: stuffthingmaps ids 0..181
N_BLOCKS = (3, 4, 23, 3)  # ResNet-101
ATROUS_RATES = (6, 12, 18, 24)
SCALES = (0.5, 0.75)  # DeepLabV2_ResNet101_MSC's, besides the input's own scale
BN_EPS = 1e-5
BOTTLENECK_EXPANSION = 4


class _ConvBnReLU(nn.Sequential):
    """Conv (no bias) + batch norm (+ ReLU): the unit every ResNet conv is made of; keys `conv.*`, `bn.*`."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 relu: bool = True):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=1 - 0.999))
        if relu:
            self.add_module("relu", nn.ReLU())


class _Bottleneck(nn.Module):
    """1x1 reduce (carries the stride) -> 3x3 (dilated) -> 1x1 increase, plus the shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int, downsample: bool):
        super().__init__()
        mid_ch = out_ch // BOTTLENECK_EXPANSION
        self.reduce = _ConvBnReLU(in_ch, mid_ch, 1, stride, 0, 1, True)
        self.conv3x3 = _ConvBnReLU(mid_ch, mid_ch, 3, 1, dilation, dilation, True)
        self.increase = _ConvBnReLU(mid_ch, out_ch, 1, 1, 0, 1, False)
        self.shortcut = _ConvBnReLU(in_ch, out_ch, 1, stride, 0, 1, False) if downsample else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.reduce(x)
        h = self.conv3x3(h)
        h = self.increase(h)
        h += self.shortcut(x)
        return F.relu(h)


class _ResLayer(nn.Sequential):
    """`n_layers` bottlenecks `block1`..; only block1 projects its shortcut and carries the stride."""

    def __init__(self, n_layers: int, in_ch: int, out_ch: int, stride: int, dilation: int):
        super().__init__()
        for i in range(n_layers):
            first = i == 0
            self.add_module(f"block{i + 1}", _Bottleneck(in_ch if first else out_ch, out_ch,
                                                         stride if first else 1, dilation, first))


class _Stem(nn.Sequential):
    """7x7/2 conv unit, then a 3x3/2 max-pool with ceil_mode=True (neither MSRA's nor torchvision's pooling)."""

    def __init__(self, out_ch: int):
        super().__init__()
        self.add_module("conv1", _ConvBnReLU(3, out_ch, 7, 2, 3, 1))
        self.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))


class _ASPP(nn.Module):
    """Parallel dilated 3x3 convs `c0`.. (with bias) to the class logits, summed in order."""

    def __init__(self, in_ch: int, out_ch: int, rates: tuple[int, ...]):
        super().__init__()
        for i, rate in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(in_ch, out_ch, 3, 1, padding=rate, dilation=rate, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        return sum(stage(x) for stage in self.children())  # 0 + c0 + c1 + ..., the reference's order


class DeepLabV2(nn.Sequential):
    """Dilated ResNet (output stride 8) + ASPP: logits at about 1/8 of the input size, each of the three
    stride-2 steps rounding up (ceil_mode pooling adds one more for even sides): 256 -> 33, 41 -> 6."""

    def __init__(self, n_classes: int, n_blocks: tuple[int, ...], atrous_rates: tuple[int, ...]):
        super().__init__()
        ch = [64 * 2**p for p in range(6)]
        self.add_module("layer1", _Stem(ch[0]))
        self.add_module("layer2", _ResLayer(n_blocks[0], ch[0], ch[2], 1, 1))
        self.add_module("layer3", _ResLayer(n_blocks[1], ch[2], ch[3], 2, 1))
        self.add_module("layer4", _ResLayer(n_blocks[2], ch[3], ch[4], 1, 2))
        self.add_module("layer5", _ResLayer(n_blocks[3], ch[4], ch[5], 1, 4))
        self.add_module("aspp", _ASPP(ch[5], n_classes, atrous_rates))


class MSC(nn.Module):
    """Multi-scale inputs, test-time forward: the element-wise max of the logits at scale 1 and at `scales`,
    all at the scale-1 logits' size."""

    def __init__(self, base: nn.Module, scales: tuple[float, ...] = SCALES):
        super().__init__()
        self.base = base
        self.scales = tuple(scales)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.base(x)
        size = logits.shape[-2:]
        fused = [logits]
        for p in self.scales:
            # scale_factor (not a size), as the reference calls it: the output side is floor(side * p) and
            # PyTorch samples with the factor 1/p itself, which differs from side / output side when side * p
            # is not whole.
            h = F.interpolate(x, scale_factor=p, mode="bilinear", align_corners=False)
            fused.append(F.interpolate(self.base(h), size=size, mode="bilinear", align_corners=False))
        return torch.max(torch.stack(fused), dim=0)[0]


def deeplabv2_resnet101_msc(n_classes: int = N_CLASSES) -> MSC:
    """The reference's `DeepLabV2_ResNet101_MSC`: ResNet-101 blocks, ASPP rates 6/12/18/24, scales 0.5/0.75."""
    return MSC(DeepLabV2(n_classes, N_BLOCKS, ATROUS_RATES), SCALES)
