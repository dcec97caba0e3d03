"""DRNSeg('drn_d_105', 19) of fyu/drn (`segment.py` on top of `drn.py`), written to load its published file.

The module tree mirrors the reference so that state-dict keys match the checkpoint as they are:
- `base` = nn.Sequential of drn_d_105's children without the last two (avgpool, fc): layer0 .. layer8, so
  `base.0` is the 7x7 stem, `base.1`/`base.2` the 3x3 conv layers (the second with stride 2), `base.3` ..
  `base.6` the Bottleneck stages [3, 4, 23, 3] (strides 2, 2, then dilation 2 and 4), `base.7`/`base.8` the
  de-gridding 3x3 conv layers (dilation 2, then 1); keys such as `base.3.0.downsample.1.running_var`;
- `seg`: 1x1 conv 512 -> 19 with bias;
- `up`: ConvTranspose2d(19, 19, 16, stride=8, padding=4, groups=19, bias=False), a fixed bilinear kernel
  that the checkpoint stores (`up.weight`); it is loaded from the file, never recomputed here;
- LogSoftmax over classes (dim 1) on the upsampled scores, as `DRNSeg.forward` returns it.

The output is 8 * ceil(H / 8) x 8 * ceil(W / 8): every stride-2 layer pads, so output pixel (i, j) lies on
image pixel (i, j) and a larger output overhangs the image at the bottom and right.
"""

from __future__ import annotations

from torch import Tensor, nn

CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)  # drn.DRN's default channels
LAYERS = (1, 1, 3, 4, 23, 3, 1, 1)  # drn_d_105: Bottleneck, arch 'D'
NUM_CLASSES = 19


class Bottleneck(nn.Module):
    """drn.Bottleneck: 1x1, 3x3 (stride and dilation here), 1x1 x4 expansion; residual always added."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def make_layer(inplanes: int, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """drn.DRN._make_layer for Bottleneck: a downsample branch (1x1 conv with the stride, BN) when the shape
    changes. The first block's 3x3 uses `dilation` too: the reference passes (dilation // 2 or dilation,
    dilation) and Bottleneck reads only the second; layer5/layer6 have new_level=False anyway."""
    downsample = None
    if stride != 1 or inplanes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * Bottleneck.expansion),
        )
    blocks_ = [Bottleneck(inplanes, planes, stride, dilation, downsample)]
    blocks_ += [Bottleneck(planes * Bottleneck.expansion, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*blocks_)


def make_conv_layers(inplanes: int, channels: int, convs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """drn.DRN._make_conv_layers: `convs` x (3x3 conv padded by its dilation, BN, ReLU); stride on the first."""
    modules: list[nn.Module] = []
    for i in range(convs):
        modules += [
            nn.Conv2d(inplanes if i == 0 else channels, channels, kernel_size=3, stride=stride if i == 0 else 1,
                      padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*modules)


def drn_d_105_layers() -> list[nn.Module]:
    """layer0 .. layer8 of drn.drn_d_105 in registration order (the reference's model.children()[:-2])."""
    c, n = CHANNELS, LAYERS
    expanded = Bottleneck.expansion
    layer0 = nn.Sequential(
        nn.Conv2d(3, c[0], kernel_size=7, stride=1, padding=3, bias=False),
        nn.BatchNorm2d(c[0]),
        nn.ReLU(inplace=True),
    )
    return [
        layer0,
        make_conv_layers(c[0], c[0], n[0], stride=1),
        make_conv_layers(c[0], c[1], n[1], stride=2),
        make_layer(c[1], c[2], n[2], stride=2),
        make_layer(c[2] * expanded, c[3], n[3], stride=2),
        make_layer(c[3] * expanded, c[4], n[4], dilation=2),
        make_layer(c[4] * expanded, c[5], n[5], dilation=4),
        make_conv_layers(c[5] * expanded, c[6], n[6], dilation=2),
        make_conv_layers(c[6], c[7], n[7], dilation=1),
    ]


class DRNSeg(nn.Module):
    """segment.DRNSeg('drn_d_105', 19) at test time: forward returns the log-probabilities at 8x the trunk's
    resolution (the reference's `model(x)[0]`)."""

    def __init__(self, classes: int = NUM_CLASSES):
        super().__init__()
        self.base = nn.Sequential(*drn_d_105_layers())
        self.seg = nn.Conv2d(CHANNELS[-1], classes, kernel_size=1, bias=True)
        self.up = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4, output_padding=0, groups=classes,
                                     bias=False)
        self.up.weight.requires_grad_(False)  # fixed bilinear kernel, as in the reference
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.softmax(self.up(self.seg(self.base(x))))
