"""CLADE (Tan et al., "Efficient Semantic Image Synthesis via Class-Adaptive Normalization", TPAMI 2021).

SPADE's generator (`spadekit_plugins.spade.generator.SPADEGenerator`) with each SPADE replaced by class-adaptive
normalization, as in the reference code (tzt101/CLADE, `--norm_mode clade`):

- `ClassAffine` (reference `ClassAffine`): per-class scale `weight` and bias `bias` (label_nc x C each), looked
  up by each pixel's label, the label being the argmax of the one-hot channels (the don't-care channel, where
  the label space has one, is a class like any other). The modulation is `norm(x) * weight[label] + bias[label]`
  (no "1 +": the scale is used as it is, and starts uniform in [0, 1) with the bias at 0, as the reference
  initializes it). With ICPE, `weight[label] * (1 + dist_conv_w(dist))` and `bias[label] * (1 + dist_conv_b(dist))`,
  two 1x1 convs from the 2-channel encoding to one channel each.
- `CLADE` (reference `SPADELight`): the parameter-free norm (`param_free_norm`), then `class_specified_affine`;
  with instance edges, the edge channel is not a class: it goes through a 1x1 conv (`inst_conv`) whose output
  is concatenated to the modulated features as one more channel, so every conv after a CLADE layer takes
  C + 1 channels (reference `SPADEResnetBlock` with `norm_mode == 'clade'`).
- ICPE (`intra_class_positional_encoding`, reference `util/cal_dist_masks.py`), computed here from the label
  map at run time instead of being read from precomputed files.

Submodule and parameter names are the reference's, so its checkpoints map onto these modules key for key (with
the spectral-norm key renaming that SPADE's import applies).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.plugin import (
    GeneratorContext,
    ParamFreeNorm,
    conv2d,
    kept_on,
    modulate,
    norm_as_affine,
    param_free_norm,
    resize_segmap,
)
from spadekit_plugins.clade.spec import CladeOptions
from spadekit_plugins.spade.generator import SPADEGenerator

ICPE_EPS = 1e-5  # reference normalize_dist: offset / max(|offset| + 1e-5)


class ClassLayout(NamedTuple):
    """What a CLADE layer reads of the semantics, at one size: each pixel's class (B x H x W, int64), the
    instance-edge channel (B x 1 x H x W; None without instances) and the ICPE map (B x 2 x H x W; None
    without ICPE). The generator derives it once and nearest-resizes it per feature size."""

    labels: torch.Tensor
    edges: torch.Tensor | None = None
    dist: torch.Tensor | None = None

    def resized(self, size: tuple[int, int] | torch.Size) -> ClassLayout:
        return ClassLayout(
            resize_segmap(self.labels[:, None], size)[:, 0],
            None if self.edges is None else resize_segmap(self.edges, size),
            None if self.dist is None else resize_segmap(self.dist, size),
        )


def class_layout(semantics: torch.Tensor, use_instance: bool, dist: torch.Tensor | None = None) -> ClassLayout:
    """The reference's reading of a segmap: with instances the last channel is the edge map and the classes are
    the argmax of the others; without, the argmax of all channels."""
    mask = semantics[:, :-1] if use_instance else semantics
    return ClassLayout(mask.argmax(1), semantics[:, -1:] if use_instance else None, dist)


class ClassAffine(nn.Module):
    """Class-adaptive affine modulation: `x * weight[label] + bias[label]`, per channel (reference `ClassAffine`).

    `labels`: B x H x W integer class ids, or (as the reference takes it) a float B x label_nc x H x W one-hot
    mask, read by its argmax. With `add_dist`, the per-pixel scale and bias are each multiplied by
    `1 + conv1x1(dist)`, dist the B x 2 x H x W intra-class positional encoding (nearest-resized to x)."""

    def __init__(self, label_nc: int, affine_nc: int, add_dist: bool = False):
        super().__init__()
        self.label_nc, self.affine_nc, self.add_dist = label_nc, affine_nc, add_dist
        self.weight = nn.Parameter(torch.empty(label_nc, affine_nc))
        self.bias = nn.Parameter(torch.empty(label_nc, affine_nc))
        nn.init.uniform_(self.weight)  # U[0, 1), and left so by the reference's xavier init (not a conv)
        nn.init.zeros_(self.bias)
        if add_dist:
            # the reference zeroes these, then its network-wide init gives every conv xavier_normal(0.02) and
            # zero bias, which is what they start from in training; conv2d initializes the same way
            self.dist_conv_w = conv2d(2, 1, 1)
            self.dist_conv_b = conv2d(2, 1, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, dist: torch.Tensor | None = None) -> torch.Tensor:
        scale, shift = self.modulation(labels, dist, x.shape[-2:])
        return x * scale + shift

    def modulation(self, labels: torch.Tensor, dist: torch.Tensor | None,
                   size: tuple[int, int] | torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-pixel scale and shift (B x affine_nc x H x W each) at `size`."""
        if labels.is_floating_point():  # a one-hot mask, as the reference takes it
            labels = labels.argmax(1)
        labels = resize_segmap(labels[:, None], size)[:, 0]
        scale = F.embedding(labels, self.weight).permute(0, 3, 1, 2)
        shift = F.embedding(labels, self.bias).permute(0, 3, 1, 2)
        if self.add_dist:
            if dist is None:
                raise ValueError("this CLADE layer uses the intra-class positional encoding (add_dist), none given")
            dist = resize_segmap(dist, size)
            scale = scale * (1 + self.dist_conv_w(dist))
            shift = shift * (1 + self.dist_conv_b(dist))
        return scale, shift


class CLADE(nn.Module):
    """Class-adaptive normalization (reference `SPADELight`): parameter-free norm, then `ClassAffine`; with
    instance edges, a 1x1 conv of the edge channel appended as one more output channel (norm_nc + 1 out).

    `segmap`: the semantics as the generator takes them (`label_nc` one-hot channels, then the edge channel if
    `use_instance`), read as the reference reads them, with `input_dist` the full-size ICPE map; or a
    `ClassLayout` already derived from them (what `CLADEGenerator` passes: one argmax per size, not per layer).
    """

    def __init__(self, norm_nc: int, label_nc: int, norm: ParamFreeNorm = "sync_batch", use_instance: bool = False,
                 add_dist: bool = False):
        super().__init__()
        self.use_instance = use_instance
        self.param_free_norm = param_free_norm(norm, norm_nc)
        self.class_specified_affine = ClassAffine(label_nc, norm_nc, add_dist)
        if use_instance:
            self.inst_conv = conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor | ClassLayout,
                input_dist: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(segmap, ClassLayout):
            segmap = class_layout(resize_segmap(segmap, x.shape[-2:]), self.use_instance, input_dist)
        layout = segmap.resized(x.shape[-2:])
        folded = self._folded(x, layout)
        if folded is not None:
            return folded
        normalized = self.param_free_norm(x)
        if not self.use_instance:
            return self.class_specified_affine(normalized, layout.labels, layout.dist)
        scale, shift = self.class_specified_affine.modulation(layout.labels, layout.dist, x.shape[-2:])
        instance = self.inst_conv(layout.edges)
        if torch.is_grad_enabled():
            return torch.cat([normalized * scale + shift, instance], 1)
        # without grad, the same values written straight into the concatenation, in x's memory format: no
        # separate cat, and no re-layout for the next conv (a third of the forward at COCO-Stuff 256 on a CPU)
        b, c, h, w = normalized.shape
        dtype = torch.promote_types(torch.promote_types(normalized.dtype, scale.dtype), instance.dtype)
        layout_format = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and c > 1 \
            else torch.contiguous_format
        out = torch.empty(b, c + 1, h, w, dtype=dtype, device=x.device, memory_format=layout_format)
        torch.mul(normalized, scale, out=out[:, :c]).add_(shift)
        out[:, c:].copy_(instance)
        return out

    def _folded(self, x: torch.Tensor, layout: ClassLayout) -> torch.Tensor | None:
        """At inference on a CPU, with a batch norm and without ICPE, norm and class affine are one per-class scale
        and shift (`spadekit.plugin.modulate`): one pass over the feature map instead of four. None elsewhere."""
        if torch.is_grad_enabled() or self.training or x.device.type != "cpu" or self.class_specified_affine.add_dist:
            return None
        rows = kept_on(self, "_rows_cache", lambda: self._class_rows(x.dtype), x.dtype)
        if rows is None:
            return None
        out = modulate(x, layout.labels.reshape(-1), rows, extra_channels=int(self.use_instance))
        if self.use_instance:
            out[:, -1:] = self.inst_conv(layout.edges)
        return out

    def _class_rows(self, dtype: torch.dtype) -> torch.Tensor | None:
        """label_nc x 2C rows (a * weight | c * weight + bias) for a norm(x) = a x + c; None for a norm that
        depends on x."""
        scale, offset = norm_as_affine(self.param_free_norm)
        if scale is None:
            return None
        weight, bias = self.class_specified_affine.weight.float(), self.class_specified_affine.bias.float()
        return torch.cat([weight * scale, weight * offset + bias], 1).to(dtype)


class CLADEResBlock(nn.Module):
    """SPADE's residual block with CLADE layers (reference `SPADEResnetBlock`, `norm_mode == 'clade'`): the
    convs after a CLADE layer take one more input channel when it appends the instance feature."""

    def __init__(self, fin: int, fout: int, label_nc: int, norm: ParamFreeNorm = "sync_batch", spectral: bool = True,
                 use_instance: bool = False, add_dist: bool = False):
        super().__init__()
        fmiddle, extra = min(fin, fout), int(use_instance)
        self.learned_shortcut = fin != fout
        self.conv_0 = conv2d(fin + extra, fmiddle, 3, spectral=spectral)
        self.conv_1 = conv2d(fmiddle + extra, fout, 3, spectral=spectral)
        if self.learned_shortcut:
            self.conv_s = conv2d(fin + extra, fout, 1, bias=False, spectral=spectral)
        clade = partial(CLADE, label_nc=label_nc, norm=norm, use_instance=use_instance, add_dist=add_dist)
        self.norm_0 = clade(fin)
        self.norm_1 = clade(fmiddle)
        if self.learned_shortcut:
            self.norm_s = clade(fin)

    def forward(self, x: torch.Tensor, seg: torch.Tensor | ClassLayout,
                input_dist: torch.Tensor | None = None) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg, input_dist)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, input_dist), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, input_dist), 0.2))
        return x_s + dx


class CLADEGenerator(SPADEGenerator):
    """SPADE's generator (head, blocks, upsamplings, VAE encoder) with `CLADEResBlock`s. The semantics are read
    once per forward (labels by argmax, the edge channel) and, with ICPE, encoded (`input_dist`: a precomputed
    B x 2 x H x W map, as the reference's loader gives it, else computed from the labels)."""

    plugin_name = "clade"

    def __init__(self, options: CladeOptions, context: GeneratorContext):
        super().__init__(options, context)
        self.use_instance = context.space.use_instance

    def block_factory(self, options: CladeOptions, context: GeneratorContext):
        space = context.space
        return partial(CLADEResBlock, label_nc=space.one_hot_nc, norm=options.norm, spectral=options.spectral,
                       use_instance=space.use_instance, add_dist=options.add_dist)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None,
                input_dist: torch.Tensor | None = None) -> torch.Tensor:
        layout = class_layout(semantics, self.use_instance)
        if self.options.add_dist:
            if input_dist is None:
                input_dist = intra_class_positional_encoding(layout.labels, self.options.icpe_skip)
            layout = layout._replace(dist=input_dist)
        return self.decode(self._head_input(semantics, z), _LayoutPyramid(layout))


class _LayoutPyramid:
    """The class layout nearest-resized once per feature size, shared by every CLADE layer at that size."""

    def __init__(self, layout: ClassLayout):
        self.layout = layout
        self.cache: dict[tuple[int, int], ClassLayout] = {}

    def __call__(self, x: torch.Tensor) -> ClassLayout:
        size = tuple(x.shape[-2:])
        if size not in self.cache:
            self.cache[size] = self.layout.resized(size)
        return self.cache[size]


# --- ICPE: the intra-class positional encoding ---------------------------------------------------------------

_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


@torch.no_grad()
def connected_regions(labels: torch.Tensor) -> torch.Tensor:
    """B x H x W labels -> B x H x W region ids: pixels share an id when an 8-connected path of pixels of their
    class joins them (cv2.connectedComponents' default connectivity). The id of a region is the flat index (into
    the B*H*W pixels) of one of its pixels, so ids of different images never collide.

    Parallel label propagation: every pixel points at a pixel of its region; each round takes the least pointer
    among a pixel and its same-class neighbours, hooks the pixel's target onto it and shortcuts pointer chains
    (pointer jumping) until every pixel points at a root; it stops when no pointer changes."""
    b, h, w = labels.shape
    parent = torch.arange(b * h * w, device=labels.device).view(b, h, w)
    pairs = []  # per direction: (slice of pixels, slice of their neighbours, same-class mask)
    for dy, dx in _NEIGHBOURS:
        here = (slice(None), slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx)))
        there = (slice(None), slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx)))
        pairs.append((here, there, labels[here] == labels[there]))
    while True:
        least = parent.clone()
        for here, there, same in pairs:
            least[here] = torch.where(same, torch.minimum(least[here], parent[there]), least[here])
        flat, least = parent.view(-1), least.view(-1)
        hooked = flat.scatter_reduce(0, flat, least, "amin")  # a pixel's target takes the least it saw
        hooked = torch.minimum(hooked, least)
        while True:  # pointer jumping: follow the pointers until each pixel points at a root
            jumped = hooked[hooked]
            if torch.equal(jumped, hooked):
                break
            hooked = jumped
        if torch.equal(hooked, flat):
            return parent
        parent = hooked.view(b, h, w)


@torch.no_grad()
def intra_class_positional_encoding(labels: torch.Tensor, skip: int | None = 0) -> torch.Tensor:
    """CLADE-ICPE's positional map of a label map (reference `util/cal_dist_masks.py`, default 'norm' mode):
    B x H x W (or B x 1 x H x W) labels -> B x 2 x H x W float32, channel 0 the row offset and channel 1 the
    column offset of each pixel from the centroid of its connected region (8-connected, per class), each
    divided by the region's largest absolute offset plus 1e-5, so it lies in (-1, 1). Pixels of class `skip`
    are 0 (the reference skips raw label 0; None skips nothing). Computed in float64 and rounded once, as the
    reference's numpy, so the result is equal to its precomputed maps for the same label map (the reference
    reads the label map only, never the instance map). On the meta device (shapes only, e.g. FLOP counting) the
    map is zeros.

    Where this differs from the reference's training data: it precomputes the maps on the full-size annotation
    and resizes, crops and flips them with the image (nearest; the flip keeps the sign of the column offsets),
    while here the map encodes the label map the generator receives: a region cut by the crop is centred on
    what is left of it, and a flipped layout is encoded as the layout it is. At test time (resize only) the two
    agree up to the nearest resize of the map versus of the labels."""
    if labels.dim() == 4:
        labels = labels[:, 0]
    b, h, w = labels.shape
    if labels.is_meta:
        return torch.zeros(b, 2, h, w, device=labels.device)
    region = connected_regions(labels).reshape(-1)
    n = region.numel()
    f64 = dict(dtype=torch.float64, device=labels.device)
    rows = torch.arange(h, **f64).view(1, h, 1).expand(b, h, w).reshape(-1)
    cols = torch.arange(w, **f64).view(1, 1, w).expand(b, h, w).reshape(-1)
    area = torch.zeros(n, **f64).index_add_(0, region, torch.ones(n, **f64))[region]
    offsets = []
    for coord in (rows, cols):
        centroid = torch.zeros(n, **f64).index_add_(0, region, coord)[region] / area  # exact sums, one rounding
        offset = coord - centroid
        largest = torch.zeros(n, **f64).scatter_reduce_(0, region, offset.abs(), "amax")[region]
        offsets.append(offset / (largest + ICPE_EPS))
    dist = torch.stack(offsets).view(2, b, h, w).transpose(0, 1).float()
    if skip is not None:
        dist = dist.masked_fill((labels == skip)[:, None], 0.0)
    return dist.contiguous()
