"""SPADE's modulation maps (gamma, beta) at inference, computed once per class inside uniform regions.

gamma = conv_g(relu(conv_s(segmap))) depends, at a pixel, only on the segmap in a window of radius
r = k_s // 2 + k_g // 2 around it (5x5 for the paper's 3x3 kernels). Where that window lies inside the image,
holds a single label and no other semantic channel (instance edges) is set, the pixel's gamma is the one
every such pixel of that class gets: `bias_g + sum over taps of W_g[tap] @ relu(bias_s + sum over taps of
W_s[:, class, tap])`, a per-class table. Painted masks and segmentation maps are mostly such interiors, so
the convolution is only needed on the band along region borders: there it runs as a gather of each pixel's
k x k window and one matrix product. The result equals the dense computation up to float rounding
(tests/test_regions.py).

Used on CPU without grad (the inference path), when enough pixels are interior to pay for the gathers and the
window tables (`spadekit.nn.spade_tables`, which also use `interior` and `class_table`) declined.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spadekit.nn.onehot import one_hot_labels

MIN_INTERIOR = 0.25  # below this share of interior pixels the dense convolution is as fast
CHUNK = 2048  # border pixels per gathered matrix product


def interior(labels: Tensor, rest: Tensor | None, radius: int) -> Tensor:
    """B x H x W bool: pixels whose (2 radius + 1)^2 window lies inside the image, holds one label in `labels`
    (B x H x W) and no nonzero value in `rest` (B x R x H x W, the semantics' other channels)."""
    batch, height, width = labels.shape
    k = 2 * radius + 1
    inside = torch.zeros(batch, height, width, dtype=torch.bool, device=labels.device)
    if height < k or width < k:
        return inside
    ids = labels[:, None].float()  # exact for any label count below 2**24
    uniform = F.max_pool2d(ids, k, stride=1) == -F.max_pool2d(-ids, k, stride=1)
    if rest is not None and rest.shape[1] > 0:
        uniform &= F.max_pool2d(rest.detach().abs().amax(1, keepdim=True).float(), k, stride=1) == 0
    inside[:, radius:height - radius, radius:width - radius] = uniform[:, 0]
    return inside


def class_table(shared: nn.Conv2d, modulation: nn.Conv2d, one_hot_nc: int) -> Tensor:
    """(one_hot_nc + 1) x out: `modulation(relu(shared(segmap)))` on a segmap of one class everywhere (the last
    row: no class set), with the other channels zero."""
    weight = shared.weight[:, :one_hot_nc].sum((2, 3)).t()  # one_hot_nc x hidden
    hidden = torch.cat([weight, weight.new_zeros(1, weight.shape[1])])
    if shared.bias is not None:
        hidden = hidden + shared.bias
    table = hidden.relu() @ modulation.weight.sum((2, 3)).t()
    return table + modulation.bias if modulation.bias is not None else table


def region_modulation(segmap: Tensor, actv: Tensor, shared: nn.Conv2d, gamma: nn.Conv2d, beta: nn.Conv2d,
                      one_hot_nc: int, labels: Tensor | None = None) -> tuple[Tensor, Tensor] | None:
    """(gamma, beta) maps, each B x C x H x W in channels_last memory format, equal to `gamma(actv)` and
    `beta(actv)` where `actv = relu(shared(segmap))`; None when too few pixels are interior to gain.
    `labels`: the segmap's `one_hot_labels`, when the caller has them already."""
    radius = shared.kernel_size[0] // 2 + gamma.kernel_size[0] // 2
    if labels is None:
        labels = one_hot_labels(segmap, one_hot_nc)
    inside = interior(labels, segmap[:, one_hot_nc:], radius)
    if inside.float().mean().item() < MIN_INTERIOR:
        return None
    batch, height, width = labels.shape
    with torch.autocast(segmap.device.type, enabled=False):
        table = torch.cat([class_table(shared, gamma, one_hot_nc), class_table(shared, beta, one_hot_nc)], 1)
    both = F.embedding(labels.flatten(), table.to(actv.dtype))  # B*H*W x 2C: every pixel as if interior
    border = (~inside).flatten().nonzero().squeeze(1)
    if border.numel():
        both.index_copy_(0, border, _border_conv(actv, border, gamma, beta).to(both.dtype))
    maps = both.view(batch, height, width, -1).permute(0, 3, 1, 2)
    return maps[:, :gamma.out_channels], maps[:, gamma.out_channels:]


def _border_conv(actv: Tensor, pixels: Tensor, gamma: nn.Conv2d, beta: nn.Conv2d) -> Tensor:
    """`gamma(actv)` and `beta(actv)` side by side (len(pixels) x 2C) at flat pixel indices b * H * W + y * W + x."""
    batch, channels, height, width = actv.shape
    k = gamma.kernel_size[0]
    p = k // 2
    padded = F.pad(actv, (p, p, p, p)).permute(0, 2, 3, 1).reshape(-1, channels)  # rows: padded pixels
    row_length, image = width + 2 * p, (height + 2 * p) * (width + 2 * p)
    b, yx = pixels.div(height * width, rounding_mode="floor"), pixels.remainder(height * width)
    y, x = yx.div(width, rounding_mode="floor"), yx.remainder(width)
    corner = b * image + y * row_length + x  # the window's top-left row in `padded`
    taps = (torch.arange(k, device=actv.device)[:, None] * row_length + torch.arange(k, device=actv.device)).flatten()
    # weights as (dy, dx, channel) rows, gamma's outputs then beta's
    weight = torch.cat([gamma.weight, beta.weight]).permute(0, 2, 3, 1).reshape(-1, k * k * channels).t()
    bias = torch.cat([gamma.bias, beta.bias]) if gamma.bias is not None and beta.bias is not None else None
    out = actv.new_empty(len(pixels), weight.shape[1])
    for start in range(0, len(pixels), CHUNK):
        rows = padded[(corner[start:start + CHUNK, None] + taps).flatten()].view(-1, k * k * channels)
        part = rows @ weight.to(rows.dtype)
        out[start:start + CHUNK] = part + bias if bias is not None else part
    return out
