"""The SPADE generator (paper Figure 12; official `SPADEGenerator`), with official submodule names."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.plugin import (
    ConvEncoder,
    GeneratorContext,
    ParamFreeNorm,
    SpadekitError,
    SPADEResBlock,
    conv2d,
    linear,
    param_free_norm,
    resize_segmap,
)
from spadekit_plugins.spade.spec import SpadeOptions


class SPADEGenerator(nn.Module):
    """A 16*ngf x sh x sw tensor (from the downsampled segmap, or from a latent z) goes through SPADE
    residual blocks, each followed by 2x nearest upsampling, down to ngf channels, then a 3x3 conv to RGB."""

    plugin_name = "spade"  # for error messages; a subclass (another plugin) names itself

    def __init__(self, options: SpadeOptions, context: GeneratorContext):
        super().__init__()
        self.options = options
        nf, label_nc = options.ngf, context.semantic_nc
        self.num_up = SpadeOptions.UPSAMPLINGS[options.num_upsampling_layers]
        height, width = context.image_size
        self.sh, self.sw = height >> self.num_up, width >> self.num_up
        if self.sh < 1 or self.sw < 1 or self.sh << self.num_up != height or self.sw << self.num_up != width:
            raise SpadekitError(
                f"The {self.plugin_name} generator cannot make {width}x{height} images: with num_upsampling_layers = "
                f"{options.num_upsampling_layers!r} both sides must be multiples of {2 ** self.num_up}; change "
                "data.crop_size / data.aspect_ratio or model.num_upsampling_layers."
            )
        self.z_dim = options.z_dim if options.input == "noise" else None
        if self.z_dim is not None:
            self.fc = linear(self.z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = conv2d(label_nc, 16 * nf, 3)
        block = self.block_factory(options, context)
        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, nf)
        final_nc = nf
        if options.num_upsampling_layers == "most":
            self.up_4 = block(nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = conv2d(final_nc, 3, 3)
        self.encoder = ConvEncoder(nf, options.z_dim) if options.use_vae else None

    def block_factory(self, options, context: GeneratorContext):
        """(fin, fout) -> a residual block taking (x, segmaps(x)); a subclass swaps the blocks here."""
        return _block_factory(options, context)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self._head_input(semantics, z), _SegmapPyramid(semantics))

    def decode(self, x: torch.Tensor, segmaps) -> torch.Tensor:
        """The residual blocks and upsamplings from the head's 16*ngf x sh x sw tensor to the image; `segmaps(x)`
        is what each block at x's size takes besides x (here the resized semantics)."""
        x = self.head_0(x, segmaps(x))
        x = _up(x)
        x = self.G_middle_0(x, segmaps(x))
        if self.num_up > 5:
            x = _up(x)
        x = self.G_middle_1(x, segmaps(x))
        for name in ("up_0", "up_1", "up_2", "up_3") + (("up_4",) if self.num_up > 6 else ()):
            x = _up(x)
            x = getattr(self, name)(x, segmaps(x))
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))

    def _head_input(self, semantics: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if self.z_dim is None:
            return self.fc(resize_segmap(semantics, (self.sh, self.sw)))
        if z is None:  # sample from the prior (the official code fails here on CPU)
            z = torch.randn(semantics.shape[0], self.z_dim, device=semantics.device, dtype=semantics.dtype)
        return self.fc(z).view(-1, 16 * self.options.ngf, self.sh, self.sw)


def _block_factory(options: SpadeOptions, context: GeneratorContext):
    """(fin, fout) -> a residual block: SPADE's, or the "decoder w/ Concat" one of Table 3."""
    label_nc = context.semantic_nc
    if options.concat:
        return partial(ConcatResBlock, label_nc=label_nc, norm=options.norm, spectral=options.spectral)
    return partial(SPADEResBlock, label_nc=label_nc, norm=options.norm, kernel_size=options.kernel_size,
                   hidden=options.hidden, spectral=options.spectral, one_hot_nc=context.space.one_hot_nc)


class ConcatResBlock(nn.Module):
    """The SPADE residual block with each SPADE replaced by its parameter-free norm, the label map being
    concatenated to the input of the conv that SPADE fed instead (Table 3, "decoder w/ Concat": 79M
    parameters at ADE20K 256, 82M at COCO-Stuff). Submodule names as in `SPADEResBlock`."""

    def __init__(self, fin: int, fout: int, label_nc: int, norm: ParamFreeNorm = "sync_batch", spectral: bool = True):
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = conv2d(fin + label_nc, fmiddle, 3, spectral=spectral)
        self.conv_1 = conv2d(fmiddle + label_nc, fout, 3, spectral=spectral)
        self.norm_0 = param_free_norm(norm, fin)
        self.norm_1 = param_free_norm(norm, fmiddle)
        if self.learned_shortcut:
            self.conv_s = conv2d(fin + label_nc, fout, 1, bias=False, spectral=spectral)
            self.norm_s = param_free_norm(norm, fin)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(torch.cat([self.norm_s(x), segmap], 1)) if self.learned_shortcut else x
        dx = self.conv_0(torch.cat([F.leaky_relu(self.norm_0(x), 0.2), segmap], 1))
        dx = self.conv_1(torch.cat([F.leaky_relu(self.norm_1(dx), 0.2), segmap], 1))
        return x_s + dx


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class _SegmapPyramid:
    """The semantics nearest-resized once per feature size, shared by every SPADE at that size."""

    def __init__(self, semantics: torch.Tensor):
        self.semantics = semantics
        self.cache: dict[tuple[int, int], torch.Tensor] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if size not in self.cache:
            self.cache[size] = resize_segmap(self.semantics, size)
        return self.cache[size]
