"""UperNet-101 of CSAILVision/semantic-segmentation-pytorch (`config/ade20k-resnet101-upernet.yaml`).

Encoder `resnet101`: the repository's own ResNet (`mit_semseg/models/resnet.py`), not torchvision's: a deep
stem of three 3x3 convs (3->64 stride 2, 64->64, 64->128), a 3x3 stride-2 max-pool, then Bottleneck layers
[3, 4, 23, 3] with the stride in the 3x3 conv; not dilated (`Resnet`, not `ResnetDilated`), so the four
feature maps are at 1/4, 1/8, 1/16 and 1/32 of the input.
Decoder `upernet` (`build_decoder('upernet')` -> `UPerNet(fpn_dim=512)`; 256 is `upernet_lite`): PPM on the
1/32 map, an FPN top-down path, the four levels fused at 1/4 and a 1x1 classifier.

Module and attribute names are the reference's, so that `state_dict()` keys are those of the published
`encoder_epoch_50.pth` / `decoder_epoch_50.pth` (the `Resnet` wrapper's names: `conv1.weight`,
`layer1.0.conv1.weight`, ...; `ppm_conv.0.0.weight`, `fpn_out.0.0.0.weight`, `conv_last.1.bias`, ...).
SynchronizedBatchNorm2d is plain BatchNorm2d (eps 1e-5) in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RESNET101_LAYERS = (3, 4, 23, 3)
POOL_SCALES = (1, 2, 3, 6)
FPN_INPLANES = (256, 512, 1024, 2048)
FPN_DIM = 512  # build_decoder('upernet'); 'upernet_lite' would be 256
FC_DIM = 2048
NUM_CLASS = 150


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv3x3_bn_relu(in_planes: int, out_planes: int, stride: int = 1) -> nn.Sequential:
    """The reference's conv3x3_bn_relu; a Sequential, so its keys are `.0.weight`, `.1.running_mean`, ..."""
    return nn.Sequential(conv3x3(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes), nn.ReLU(inplace=True))


def upsample(x: Tensor, size) -> Tensor:
    """Every resize inside UperNet and of its logits: bilinear, align_corners=False."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride) -> 1x1 x4, plus the (projected) input."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def make_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """ResNet._make_layer: the first block projects the input (1x1 conv with the stride + BN) when needed."""
    downsample = None
    if stride != 1 or inplanes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * Bottleneck.expansion),
        )
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class Resnet(nn.Module):
    """The encoder: CSAIL's deep-stem ResNet-101 without avgpool/fc; returns the four stages' outputs."""

    def __init__(self, layers: tuple[int, ...] = RESNET101_LAYERS):
        super().__init__()
        self.conv1 = conv3x3(3, 64, stride=2)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(64, 64)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv3x3(64, 128)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = make_layer(128, 64, layers[0], stride=1)  # the deep stem ends with 128 channels
        self.layer2 = make_layer(256, 128, layers[1], stride=2)
        self.layer3 = make_layer(512, 256, layers[2], stride=2)
        self.layer4 = make_layer(1024, 512, layers[3], stride=2)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        conv_out = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            conv_out.append(x)
        return conv_out


class UPerNet(nn.Module):
    """The decoder: PPM head on C5, FPN laterals on C2..C4, fusion of P2..P5 at 1/4, classifier."""

    def __init__(self, num_class: int = NUM_CLASS, fc_dim: int = FC_DIM, pool_scales=POOL_SCALES,
                 fpn_inplanes=FPN_INPLANES, fpn_dim: int = FPN_DIM):
        super().__init__()
        self.ppm_pooling = nn.ModuleList(nn.AdaptiveAvgPool2d(scale) for scale in pool_scales)
        self.ppm_conv = nn.ModuleList(
            nn.Sequential(nn.Conv2d(fc_dim, 512, kernel_size=1, bias=False), nn.BatchNorm2d(512), nn.ReLU(inplace=True))
            for _ in pool_scales
        )
        self.ppm_last_conv = conv3x3_bn_relu(fc_dim + len(pool_scales) * 512, fpn_dim)
        self.fpn_in = nn.ModuleList(  # lateral 1x1 convs; the top level (C5) goes through the PPM instead
            nn.Sequential(nn.Conv2d(inplanes, fpn_dim, kernel_size=1, bias=False), nn.BatchNorm2d(fpn_dim),
                          nn.ReLU(inplace=True))
            for inplanes in fpn_inplanes[:-1]
        )
        self.fpn_out = nn.ModuleList(nn.Sequential(conv3x3_bn_relu(fpn_dim, fpn_dim)) for _ in fpn_inplanes[:-1])
        self.conv_last = nn.Sequential(
            conv3x3_bn_relu(len(fpn_inplanes) * fpn_dim, fpn_dim), nn.Conv2d(fpn_dim, num_class, kernel_size=1)
        )

    def ppm(self, conv5: Tensor) -> Tensor:
        """Pool, upsample back to C5's size, *then* 1x1 conv + BN + ReLU (the reference's order), concat, 3x3."""
        size = conv5.shape[2:]
        ppm_out = [conv5]
        for pool_scale, pool_conv in zip(self.ppm_pooling, self.ppm_conv, strict=True):
            ppm_out.append(pool_conv(upsample(pool_scale(conv5), size)))
        return self.ppm_last_conv(torch.cat(ppm_out, 1))

    def forward(self, conv_out: list[Tensor], seg_size=None) -> Tensor:
        """Class logits at 1/4 of the input, or upsampled to `seg_size` (no softmax: the caller takes it)."""
        f = self.ppm(conv_out[-1])
        fpn_feature_list = [f]
        for i in reversed(range(len(conv_out) - 1)):
            conv_x = self.fpn_in[i](conv_out[i])  # lateral branch
            f = conv_x + upsample(f, conv_x.shape[2:])  # top-down branch
            fpn_feature_list.append(self.fpn_out[i](f))
        fpn_feature_list.reverse()  # [P2 - P5]
        output_size = fpn_feature_list[0].shape[2:]
        fusion = [fpn_feature_list[0]] + [upsample(p, output_size) for p in fpn_feature_list[1:]]
        x = self.conv_last(torch.cat(fusion, 1))
        return x if seg_size is None else upsample(x, seg_size)


class SegmentationModule(nn.Module):
    """Encoder + decoder, as the reference's SegmentationModule at inference (`segSize` given)."""

    def __init__(self, encoder: Resnet, decoder: UPerNet):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, img_data: Tensor, seg_size=None) -> Tensor:
        return self.decoder(self.encoder(img_data), seg_size)
