"""A SPADE block at inference from tables: Eq. 1 without running its convolutions over the image.

`norm(x) * (1 + gamma) + beta`, where gamma = conv_g(relu(conv_s(segmap))) (beta alike), depends on the segmap
only through small windows (`spadekit.nn.label_layout`):
- inside uniform regions gamma and beta are the class's own (`spadekit.nn.regions.class_table`);
- near region borders, relu(conv_s(segmap)) at a pixel is a function of the k x k window of semantics around
  it, and a painted mask has few distinct windows (about 1,100 among the 20,000 pixels near the borders of a
  256x256 scene): the activation is computed once per distinct window, its products with conv_g's taps are a
  table, and gamma at a border pixel is the sum of the table rows of its neighbours' windows (an embedding bag);
- a batch norm in eval mode is an affine map per channel, folded into the same per-pixel scale and shift:
  out = x * scale + shift, one pass over the feature map (`spadekit.nn.class_modulation`).
The result equals the dense computation up to float rounding (tests/test_spade_tables.py). Where the windows
are too many to gain (noise-like label maps, small feature maps) or cannot be keyed exactly, `tabled_spade`
returns None and the caller convolves. What depends only on the weights is computed once per block and kept
until a weight or statistic changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spadekit.nn.class_modulation import kept_on, modulate, norm_as_affine
from spadekit.nn.label_layout import Layout, Patterns, windows
from spadekit.nn.regions import class_table

MAX_WINDOW_SHARE = 0.5  # more distinct windows than this share of the pixels: the convolution is as fast


def tabled_spade(spade: nn.Module, x: Tensor, layout: Layout) -> Tensor | None:
    """`spade(x, segmap)` (a `spadekit.nn.spade.SPADE` in eval mode, no grad) for the segmap whose layout at x's
    size is `layout`; None where the tables do not pay. The result is channels_last, in x's dtype."""
    shared, gamma = spade.mlp_shared[0], spade.mlp_gamma
    reach = gamma.kernel_size[0] // 2
    border = layout.border(shared.kernel_size[0] // 2 + reach)
    patterns = layout.patterns(shared.kernel_size[0], reach) if len(border) else None
    if len(border) and (patterns is None or patterns.count > MAX_WINDOW_SHARE * layout.pixels):
        return None
    with torch.autocast(x.device.type, enabled=False):
        tables = kept_on(spade, "_spade_tables", lambda: _make_tables(spade, x.dtype, layout.one_hot_nc), x.dtype,
                         layout.one_hot_nc)
    if tables.scale is None:  # a norm that depends on x (instance norm): normalize, then modulate
        x = spade.param_free_norm(x)
    with torch.autocast(x.device.type, enabled=False):
        at_border = tables.modulation(_border_gamma_beta(tables, layout, patterns, border)) if len(border) else None
        return modulate(x, layout.labels, tables.class_rows, border, at_border)


@dataclass
class _Tables:
    """What a SPADE block's tables need from its weights (rows and taps in the compute dtype, the rest fp32)."""

    class_rows: Tensor  # (classes + 1) x 2C: scale | shift inside a uniform region of each class (last: none)
    scale: Tensor | None  # C: the norm as x * scale + offset (None: the norm is not affine in eval mode)
    offset: Tensor | None
    shared_rows: Tensor  # (classes + 1) * k_s^2 x hidden: conv_s's one-hot lookups (label `classes`: zero)
    rest_rows: Tensor  # (other channels) * k_s^2 x hidden
    shared_bias: Tensor | None
    taps: Tensor  # hidden x (k_g^2 * 2C): conv_g's and conv_b's taps side by side, in the compute dtype
    bias: Tensor | None  # 2C

    def modulation(self, gamma_beta: Tensor) -> Tensor:
        """n x 2C rows of (gamma | beta) -> (scale | shift), so that norm(x) (1 + gamma) + beta = x * scale +
        shift (computed in fp32, returned in gamma_beta's dtype; an fp32 gamma_beta is overwritten)."""
        channels = gamma_beta.shape[1] // 2
        rows = gamma_beta.float()  # in place from here on
        gamma, beta = rows[:, :channels], rows[:, channels:]
        if self.scale is not None:  # else x is normalized already: scale 1 + gamma, shift beta
            beta.add_(self.offset).addcmul_(gamma, self.offset)  # c (1 + gamma) + beta
            gamma.mul_(self.scale).add_(self.scale)  # a (1 + gamma)
        else:
            gamma.add_(1)
        return rows.to(gamma_beta.dtype)


def _make_tables(spade: nn.Module, dtype: torch.dtype, one_hot_nc: int) -> _Tables:
    """The block's tables, computed in fp32 (the caller turns autocast off), rows and taps stored in `dtype`."""
    shared, gamma, beta = spade.mlp_shared[0], spade.mlp_gamma, spade.mlp_beta
    scale, offset = norm_as_affine(spade.param_free_norm)
    weight = shared.weight.float()
    hidden_nc, in_nc, k = weight.shape[0], weight.shape[1], weight.shape[-1]
    rows = weight.reshape(hidden_nc, in_nc * k * k).t()  # row c * k^2 + t: W[:, c, tap t]
    modulation = torch.cat([gamma.weight, beta.weight]).float()  # 2C x hidden x k x k
    biases = (gamma.bias, beta.bias)
    tables = _Tables(
        class_rows=torch.empty(0), scale=scale, offset=offset,
        shared_rows=torch.cat([rows[:one_hot_nc * k * k], rows.new_zeros(k * k, hidden_nc)]),
        rest_rows=rows[one_hot_nc * k * k:].contiguous(),
        shared_bias=None if shared.bias is None else shared.bias.float(),
        taps=modulation.permute(1, 2, 3, 0).reshape(hidden_nc, -1).to(dtype).contiguous(),
        bias=torch.cat(biases).float() if all(b is not None for b in biases) else None,
    )
    classes = torch.cat([class_table(shared, gamma, one_hot_nc), class_table(shared, beta, one_hot_nc)], 1)
    tables.class_rows = tables.modulation(classes.float()).to(dtype)
    return tables


def _border_gamma_beta(tables: _Tables, layout: Layout, patterns: Patterns, border: Tensor) -> Tensor:
    """len(border) x 2C: gamma and beta at the border pixels, from the tables of the windows around them, in the
    compute dtype (bf16 under bf16 inference, as the convolution would run)."""
    out_nc = tables.class_rows.shape[1]
    taps = tables.taps.shape[1] // out_nc
    activations = _window_activations(tables, patterns).to(tables.taps.dtype)  # windows x hidden
    # row w * taps + t: conv_g's tap t applied to window w's activation; the last taps rows: outside the image
    table = activations.new_empty((patterns.count + 1) * taps, out_nc)
    torch.mm(activations, tables.taps, out=table[:-taps].view(patterns.count, taps * out_nc))
    table[-taps:] = 0
    if tables.bias is not None:  # a border pixel's centre tap is always its own window: the bias goes there
        table.view(-1, taps, out_nc)[:-1, taps // 2] += tables.bias.to(table.dtype)
    k = round(taps ** 0.5)
    neighbours = windows(patterns.ids, border, layout.height, layout.width, k)  # len(border) x taps window ids
    index = neighbours * taps + torch.arange(taps, device=border.device)
    return F.embedding_bag(index, table, mode="sum")


def _window_activations(tables: _Tables, patterns: Patterns) -> Tensor:
    """relu(conv_s(window)) for every distinct window: windows x hidden."""
    taps = patterns.labels.shape[1]
    index = patterns.labels * taps + torch.arange(taps, device=patterns.labels.device)
    out = F.embedding_bag(index, tables.shared_rows, mode="sum")
    if patterns.rest is not None:
        out += patterns.rest.reshape(patterns.count, -1).float() @ tables.rest_rows
    if tables.shared_bias is not None:
        out += tables.shared_bias
    return out.relu_()
