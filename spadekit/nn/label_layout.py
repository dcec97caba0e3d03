"""What SPADE's inference tables need to know about a label map at one feature-map size, worked out once per
forward and shared by every SPADE block at that size.

A SPADE block's gamma and beta at a pixel depend only on the semantics in a window around it (`spadekit.nn.
spade_tables`). `Layout` holds, for the semantics resized (nearest) to one size:
- `labels`: each pixel's class id (`one_hot_nc` where no class is set), flat over batch, rows and columns;
- `rest`: the semantics' other channels (instance edges), or None when there are none or all are zero;
- `border(radius)`: the flat indices of the pixels whose (2 radius + 1)^2 window is not one class inside the
  image without other channels set (`spadekit.nn.regions.interior`): everywhere else gamma and beta are the
  class's own;
- `patterns(kernel, radius)`: the distinct kernel x kernel windows of semantics around the pixels within
  `radius` of a border pixel, and which one each such pixel has: pixels with the same window share SPADE's first
  activation (`relu(mlp_shared(segmap))`), so it is computed once per window.

The layouts of one semantics tensor are cached (weakly, and invalidated when the tensor is modified in place),
so the blocks of one forward share them; the labels are read from the one-hot channels once, at full size.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from spadekit.nn.onehot import one_hot_labels
from spadekit.nn.regions import interior
from spadekit.nn.spade import resize_segmap

KEY_BITS = 62  # bits per packed key of `distinct_rows`


@dataclass
class Patterns:
    """The distinct windows around the pixels near the border and which one each of them has.

    `ids`: B x (H + 2 r) x (W + 2 r) int64 window index of every pixel (`count` outside the image and at
    pixels not near the border, where no table lookup reads it), padded by r, the `radius` asked for (the
    second conv's reach); `labels`: count x k^2 class ids of each window's pixels (`one_hot_nc` outside the
    image); `rest`: count x R x k^2 other channels, or None."""

    ids: Tensor
    count: int
    labels: Tensor
    rest: Tensor | None


@dataclass
class Layout:
    labels: Tensor  # B*H*W int64
    rest: Tensor | None  # B x R x H x W, or None
    batch: int
    height: int
    width: int
    one_hot_nc: int
    _borders: dict[int, Tensor] = field(default_factory=dict)
    _patterns: dict[tuple[int, int], Patterns | None] = field(default_factory=dict)

    @property
    def pixels(self) -> int:
        return self.batch * self.height * self.width

    def border(self, radius: int) -> Tensor:
        """Sorted flat indices of the pixels whose window of this radius is not one uniform class."""
        if radius not in self._borders:
            inside = interior(self.labels.view(self.batch, self.height, self.width), self.rest, radius)
            self._borders[radius] = (~inside).flatten().nonzero().squeeze(1)
        return self._borders[radius]

    def patterns(self, kernel: int, radius: int) -> Patterns | None:
        """The kernel x kernel windows of the pixels within `radius` (the second conv's reach) of a border pixel
        (`border(radius + kernel // 2)`); None when other channels hold values other than 0 and 1 (they are
        keyed as bits): the caller then convolves."""
        key = (kernel, radius)
        if key not in self._patterns:
            self._patterns[key] = self._find_patterns(kernel, radius)
        return self._patterns[key]

    def _find_patterns(self, kernel: int, radius: int) -> Patterns | None:
        b, h, w, nc = self.batch, self.height, self.width, self.one_hot_nc
        if self.rest is not None and not bool(((self.rest == 0) | (self.rest == 1)).all()):
            return None
        near = self._near_border(radius + kernel // 2, radius)  # flat indices of the pixels that need a window
        p = kernel // 2
        window_labels = windows(F.pad(self.labels.view(b, h, w), (p, p, p, p), value=nc), near, h, w, kernel)
        present = torch.unique(torch.cat([self.labels, self.labels.new_tensor([nc])]))
        code = torch.full((nc + 1,), -1, dtype=torch.int64, device=self.labels.device)
        code[present] = torch.arange(len(present), device=self.labels.device)
        label_bits = max(1, math.ceil(math.log2(len(present))))
        columns = [(code[window_labels[:, t]], label_bits) for t in range(kernel * kernel)]
        rest_windows = None
        if self.rest is not None:
            padded_rest = F.pad(self.rest, (p, p, p, p))
            rest_windows = torch.stack([windows(padded_rest[:, c], near, h, w, kernel)
                                        for c in range(self.rest.shape[1])], 1)  # len(near) x R x k^2
            columns += [(column.long(), 1) for column in rest_windows.flatten(1).unbind(1)]
        inverse, count = distinct_rows(columns)
        first = torch.empty(count, dtype=torch.int64, device=near.device)
        first.scatter_(0, inverse, torch.arange(len(near), device=near.device))  # one pixel of each window
        ids = torch.full((b * h * w,), count, dtype=torch.int64, device=near.device)
        ids[near] = inverse
        ids = F.pad(ids.view(b, h, w), (radius, radius, radius, radius), value=count)
        return Patterns(ids, count, window_labels[first],
                        None if rest_windows is None else rest_windows[first])

    def _near_border(self, border_radius: int, reach: int) -> Tensor:
        """Flat indices of the pixels within `reach` of a pixel of `border(border_radius)`."""
        mask = torch.zeros(self.pixels, device=self.labels.device)
        mask[self.border(border_radius)] = 1
        if reach:
            grid = mask.view(self.batch, 1, self.height, self.width)
            mask = F.max_pool2d(grid, 2 * reach + 1, stride=1, padding=reach).flatten()
        return mask.nonzero().squeeze(1)


def distinct_rows(columns: list[tuple[Tensor, int]]) -> tuple[Tensor, int]:
    """Index of each row's distinct value among the rows of `columns` (each an int64 column with values below
    2**bits), and how many distinct rows there are: exact, for any number of columns. Columns are packed into
    keys of up to 62 bits, each key made dense with `torch.unique`, and the keys combined pairwise (the product
    of two dense counts stays far below 2**63)."""
    ids, count = None, 1
    key, used = None, 0
    for values, bits in [*columns, (None, KEY_BITS + 1)]:  # the sentinel flushes the last key
        if key is not None and (values is None or used + bits > KEY_BITS):
            unique, dense = torch.unique(key, return_inverse=True)
            if ids is None:
                ids, count = dense, len(unique)
            else:
                unique, ids = torch.unique(ids * len(unique) + dense, return_inverse=True)
                count = len(unique)
            key, used = None, 0
        if values is not None:
            key = values << used if key is None else key | (values << used)
            used += bits
    return ids, count


def windows(padded: Tensor, pixels: Tensor, height: int, width: int, kernel: int) -> Tensor:
    """len(pixels) x kernel^2: the values of `padded` (B x (H + kernel - 1) x (W + kernel - 1), padded by
    kernel // 2) in the kernel x kernel window centred on each flat pixel index b * H * W + y * W + x."""
    padded_width = width + kernel - 1
    b, yx = pixels.div(height * width, rounding_mode="floor"), pixels.remainder(height * width)
    y, x = yx.div(width, rounding_mode="floor"), yx.remainder(width)
    corner = (b * (height + kernel - 1) + y) * padded_width + x
    taps = (torch.arange(kernel, device=pixels.device)[:, None] * padded_width
            + torch.arange(kernel, device=pixels.device)).flatten()
    return padded.flatten()[corner[:, None] + taps]


# id(semantics) -> (a weak reference to them, their version when cached, their layouts by (size, one_hot_nc))
_CACHE: dict[int, tuple[weakref.ref, int, dict]] = {}


def layout_of(segmap: Tensor, size: tuple[int, int], one_hot_nc: int) -> Layout:
    """The layout of `segmap` (B x C x H x W semantics, first `one_hot_nc` channels one-hot) resized (nearest,
    as `spadekit.nn.spade.resize_segmap`) to `size`."""
    segmap = _strided_source(segmap)
    layouts = _layouts(segmap)
    full_size, size = tuple(segmap.shape[-2:]), tuple(size)
    rest = segmap[:, one_hot_nc:].detach() if segmap.shape[1] > one_hot_nc else None
    if (full_size, one_hot_nc) not in layouts:
        layouts[(full_size, one_hot_nc)] = _layout(one_hot_labels(segmap, one_hot_nc), rest, full_size, one_hot_nc)
    if (size, one_hot_nc) not in layouts:
        full = layouts[(full_size, one_hot_nc)]
        labels = full.labels.view(full.batch, full.height, full.width)
        layouts[(size, one_hot_nc)] = _layout(labels, rest, size, one_hot_nc)
    return layouts[(size, one_hot_nc)]


def _strided_source(segmap: Tensor) -> Tensor:
    """The larger semantics that `segmap` is a strided view of (`resize_segmap`'s nearest resize by a whole
    factor), so that every size's layout comes from the same labels; else `segmap` itself."""
    base = segmap._base
    if base is None or base.dim() != 4 or base.shape[:2] != segmap.shape[:2] \
            or segmap.storage_offset() != base.storage_offset():
        return segmap
    (h, w), (out_h, out_w) = base.shape[-2:], segmap.shape[-2:]
    if h % out_h or w % out_w:
        return segmap
    strides = base.stride()
    expected = (strides[0], strides[1], strides[2] * (h // out_h), strides[3] * (w // out_w))
    return base if segmap.stride() == expected else segmap


def _layouts(segmap: Tensor) -> dict:
    """The cached layouts of this semantics tensor (emptied when it was modified in place, dropped with it)."""
    key = id(segmap)
    entry = _CACHE.get(key)
    if entry is None or entry[0]() is not segmap or entry[1] != segmap._version:
        entry = (weakref.ref(segmap, lambda _: _CACHE.pop(key, None)), segmap._version, {})
        _CACHE[key] = entry
    return entry[2]


def _layout(labels: Tensor, rest: Tensor | None, size: tuple[int, int], one_hot_nc: int) -> Layout:
    """The layout at `size` from the full-size B x H x W labels and B x R x H x W other channels."""
    if rest is not None:
        rest = resize_segmap(rest.float(), size).contiguous()
        rest = rest if bool(rest.any()) else None
    labels = resize_segmap(labels[:, None], size)[:, 0].contiguous()
    return Layout(labels.flatten(), rest, labels.shape[0], size[0], size[1], one_hot_nc)
