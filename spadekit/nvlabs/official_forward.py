"""The official NVlabs/SPADE generator's eval-mode forward, op for op, on a spade generator's weights.

`spadekit perf` times the fast paths against this bar (issue: "the official code timed in the same run"). It
computes what the official code computes, the way it does (models/networks/generator.py `SPADEGenerator`,
architecture.py `SPADEResnetBlock`, normalization.py `SPADE`, in eval mode under `torch.no_grad()`):
- every SPADE resizes the full semantics to its feature size with `F.interpolate(mode='nearest')` (a new
  tensor each time) and runs its three convolutions over the whole map;
- the spectral-normed convs divide by sigma = u . W v on every forward (`torch.nn.utils.spectral_norm`'s hook
  in eval mode); batch norm uses the running statistics (`SynchronizedBatchNorm2d` in eval is F.batch_norm);
- NCHW fp32, as the official test.py runs.
Only the label-map generator (the official `--use_vae` off, `num_upsampling_layers` normal/more/most).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spadekit.nn.layers import has_spectral_norm


@torch.no_grad()
def official_forward(generator: nn.Module, semantics: Tensor) -> Tensor:
    """The official forward of `generator` (spadekit's plain `spade` generator in eval mode, label-map input)."""
    seg = semantics
    x = F.interpolate(seg, size=(generator.sh, generator.sw))
    x = _conv(generator.fc, x)
    x = _block(generator.head_0, x, seg)
    x = F.interpolate(x, scale_factor=2)
    x = _block(generator.G_middle_0, x, seg)
    if generator.num_up > 5:
        x = F.interpolate(x, scale_factor=2)
    x = _block(generator.G_middle_1, x, seg)
    for name in ("up_0", "up_1", "up_2", "up_3") + (("up_4",) if generator.num_up > 6 else ()):
        x = F.interpolate(x, scale_factor=2)
        x = _block(getattr(generator, name), x, seg)
    x = _conv(generator.conv_img, F.leaky_relu(x, 2e-1))
    return torch.tanh(x)


def _block(block: nn.Module, x: Tensor, seg: Tensor) -> Tensor:
    x_s = _conv(block.conv_s, _spade(block.norm_s, x, seg)) if block.learned_shortcut else x
    dx = _conv(block.conv_0, F.leaky_relu(_spade(block.norm_0, x, seg), 2e-1))
    dx = _conv(block.conv_1, F.leaky_relu(_spade(block.norm_1, dx, seg), 2e-1))
    return x_s + dx


def _spade(spade: nn.Module, x: Tensor, segmap: Tensor) -> Tensor:
    norm = spade.param_free_norm
    normalized = F.batch_norm(x, norm.running_mean, norm.running_var, training=False, eps=norm.eps)
    segmap = F.interpolate(segmap, size=x.size()[2:], mode="nearest")
    actv = F.relu(_conv(spade.mlp_shared[0], segmap))
    gamma = _conv(spade.mlp_gamma, actv)
    beta = _conv(spade.mlp_beta, actv)
    return normalized * (1 + gamma) + beta


def _conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    return F.conv2d(x, _weight(conv), conv.bias, conv.stride, conv.padding)


def _weight(conv: nn.Conv2d) -> Tensor:
    """The weight the official spectral-norm hook computes in eval mode: W / (u . W v)."""
    if not has_spectral_norm(conv):
        return conv.weight
    weight = conv.parametrizations.weight.original
    norm = conv.parametrizations.weight[0]
    sigma = torch.dot(norm._u, torch.mv(weight.flatten(1), norm._v))
    return weight / sigma
