"""Modulating a feature map by per-pixel rows of scale and shift, at inference: `x * scale + shift`.

SPADE's window tables (`spadekit.nn.spade_tables`) and CLADE's class-adaptive normalization both end the same
way: each pixel takes a row (scale | shift) of a small table by its class (or, along region borders, a row of
its own), with the parameter-free batch norm folded in (`norm_as_affine`). `modulate` writes the result in one
pass, pixel chunk by pixel chunk: a whole-map temporary of rows costs a pass over memory and, beyond 32 MiB,
fresh pages on every call (8x slower at 256x256 on two CPU cores).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CHUNK = 4096  # pixels per pass (measured 2-8k alike)
T = TypeVar("T")


def kept_on(module: nn.Module, attribute: str, make: Callable[[], T], *key) -> T:
    """`make()`, kept on `module` as `attribute` while its parameters and buffers are unchanged and `key` is the
    same: what inference derives from the weights (tables, folded rows) once, not per forward. A tensor changed
    in place bumps its version; one replaced (load_state_dict, .to) has a new data pointer."""
    state = tuple((t.data_ptr(), t._version) for t in (*module.parameters(), *module.buffers())) + key
    cached = getattr(module, attribute, None)
    if cached is None or cached[0] != state:
        with torch.no_grad():
            cached = (state, make())
        setattr(module, attribute, cached)
    return cached[1]


def norm_as_affine(norm: nn.Module) -> tuple[Tensor | None, Tensor | None]:
    """(a, c) in fp32 with norm(x) = a * x + c per channel, for a batch norm in eval mode with running
    statistics and no affine parameters; (None, None) for any other norm."""
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or norm.training or norm.running_mean is None \
            or norm.affine:
        return None, None
    scale = torch.rsqrt(norm.running_var.float() + norm.eps)
    return scale, -norm.running_mean.float() * scale


def modulate(x: Tensor, labels: Tensor, rows: Tensor, border: Tensor | None = None, at_border: Tensor | None = None,
             extra_channels: int = 0) -> Tensor:
    """B x (C + extra_channels) x H x W, channels_last, in `rows`' dtype: the first C channels x * scale + shift,
    where each pixel's (scale | shift) is `rows[label]` (`labels`: the B*H*W class ids, flat) or, for the sorted
    flat pixel indices `border`, the matching row of `at_border`; the extra channels are left for the caller."""
    batch, channels, height, width = x.shape
    pixels = batch * height * width
    features = x.permute(0, 2, 3, 1).reshape(pixels, channels)  # a view when x is channels_last
    out = rows.new_empty(pixels, channels + extra_channels)
    starts = list(range(0, pixels, CHUNK))
    has_border = border is not None and len(border) > 0
    cuts = torch.searchsorted(border, torch.tensor(starts[1:] + [pixels])).tolist() if has_border else None
    first = 0
    for i, start in enumerate(starts):
        end = min(start + CHUNK, pixels)
        chunk_rows = F.embedding(labels[start:end], rows)
        if cuts is not None and cuts[i] > first:
            chunk_rows.index_copy_(0, border[first:cuts[i]] - start, at_border[first:cuts[i]].to(rows.dtype))
            first = cuts[i]
        torch.addcmul(chunk_rows[:, channels:], features[start:end], chunk_rows[:, :channels],
                      out=out[start:end, :channels])
    return out.view(batch, height, width, -1).permute(0, 3, 1, 2)
