"""pix2pixHD's global generator (Wang et al. 2018) as the SPADE paper's baseline pix2pixHD++ and its variants.

Built only from spadekit's public API, as a third-party plugin would be. The layers sit in one
`nn.Sequential` called `model`, at the official code's indices (`--netG pix2pixhd`): `model.1` the 7x7
input conv, `model.{3,5,7,9}` the stride-2 convs, `model.{11..19}` the residual blocks
(`conv_block.{1,4}`), `model.{20,22,24,26}` the transposed convs, `model.29` the 7x7 output conv.

Parameter counts against Table 3, for ADE20K at 256x256 (151 input channels): Table 3 counts at ADE20K,
where its "96M" SPADE generator has 96.49M parameters (97.48M at COCO-Stuff).

- pix2pixHD++ (ngf 64): 182.93M (183M). At COCO-Stuff (184 channels) with `norm = "spectralinstance"`
  it has exactly the official `Pix2PixHDGenerator`'s 182,989,507; the default sync batch norm adds its
  affine parameters (+43K).
- compact pix2pixHD++ (ngf 48): 103.00M (103M).
- pix2pixHD++ w/ Concat: 195.45M (195M) when the label map joins the input of each of the 9 residual
  blocks. Concatenating it to the input of every conv instead would give 212M, so this is the paper's layout.
- pix2pixHD++ w/ SPADE (`spade = "all"`): 236.88M (237M) when SPADE replaces every norm. SPADE in the
  decoder only (`spade = "decoder"`: residual blocks and upsampling) gives 231.44M, 2.3% short; the
  paper does not say where its SPADE layers sit, and only "all" reproduces its count.
"""

from __future__ import annotations

import torch
from torch import nn

from spadekit.plugin import (
    SPADE,
    GeneratorContext,
    SpadekitError,
    conv2d,
    init_xavier,
    normalized_conv,
    resize_segmap,
    spectral_norm,
)
from spadekit_plugins.pix2pixhd.spec import Pix2PixHDOptions


class TakesSegmap(nn.Module):
    """A layer whose forward also receives the full-size semantics: `forward(x, segmap)`."""


class SPADEConv(nn.Sequential, TakesSegmap):
    """A conv followed by SPADE: `norm_layer(conv)` of the official code with SPADE as the norm
    (children `0` and `1`, like its `Sequential(conv, norm)`)."""

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        conv, spade = self
        return spade(conv(x), segmap)


class ResnetBlock(TakesSegmap):
    """x + (pad, norm(conv3x3), ReLU, pad, norm(conv3x3))(x); with `concat`, the label map resized to x is
    concatenated to the block's input (the w/ Concat variant)."""

    def __init__(self, conv_block: nn.Sequential, concat: bool):
        super().__init__()
        self.conv_block = conv_block
        self.concat = concat

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, resize_segmap(segmap, x.shape[-2:])], 1) if self.concat else x
        return x + run_layers(self.conv_block, h, segmap)


def run_layers(layers: nn.Sequential, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x, segmap) if isinstance(layer, TakesSegmap) else layer(x)
    return x


class Pix2PixHDGenerator(nn.Module):
    """ReflPad3 + Conv7x7 to ngf, n_downsample stride-2 Conv3x3 doubling the width, n_blocks residual blocks,
    n_downsample stride-2 ConvTranspose3x3 halving it, ReflPad3 + Conv7x7 to RGB + tanh; ReLU after every
    normalized conv. No latent input and no image encoder."""

    def __init__(self, options: Pix2PixHDOptions, context: GeneratorContext):
        super().__init__()
        self.options, self.label_nc, self.one_hot_nc = options, context.semantic_nc, context.space.one_hot_nc
        self.encoder, self.z_dim = None, None
        _check_size(options, context)
        if options.spade != "none" and options.norm.removeprefix("spectral") in ("", "none"):
            raise SpadekitError(
                f"model.spade = {options.spade!r} needs a parameter-free norm for SPADE to modulate, but model.norm "
                f"is {options.norm!r}; set model.norm to e.g. 'spectralsync_batch' or 'spectralinstance'."
            )
        decoder_spade, encoder_spade = options.spade != "none", options.spade == "all"
        ngf, n_down = options.ngf, options.n_downsample
        layers: list[nn.Module] = [nn.ReflectionPad2d(3)]
        layers += [self._normed(conv2d(self.label_nc, ngf, 7, padding=0), encoder_spade), nn.ReLU()]
        for i in range(n_down):
            conv = conv2d(ngf << i, ngf << (i + 1), 3, stride=2, padding=1)
            layers += [self._normed(conv, encoder_spade), nn.ReLU()]
        width = ngf << n_down
        layers += [self._resnet_block(width, decoder_spade) for _ in range(options.n_blocks)]
        for i in range(n_down):
            up = init_xavier(nn.ConvTranspose2d(width >> i, width >> (i + 1), 3, 2, padding=1, output_padding=1))
            layers += [self._normed(up, decoder_spade), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), conv2d(ngf, 3, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return run_layers(self.model, semantics, semantics)

    def _resnet_block(self, width: int, spade: bool) -> ResnetBlock:
        fin = width + (self.label_nc if self.options.concat else 0)
        conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            self._normed(conv2d(fin, width, 3, padding=0), spade),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            self._normed(conv2d(width, width, 3, padding=0), spade),
        )
        return ResnetBlock(conv_block, self.options.concat)

    def _normed(self, conv: nn.Module, spade: bool) -> nn.Module:
        """The official `norm_layer(conv)`: spectral norm and the norm named by `norm`, or SPADE instead."""
        if not spade:
            return normalized_conv(conv, self.options.norm)
        conv.bias = None  # SPADE's parameter-free norm cancels a bias
        spectral, kind = self.options.norm.startswith("spectral"), self.options.norm.removeprefix("spectral")
        spade_norm = SPADE(conv.out_channels, self.label_nc, kind, 3, self.options.spade_hidden, self.one_hot_nc)
        return SPADEConv(spectral_norm(conv) if spectral else conv, spade_norm)


def _check_size(options: Pix2PixHDOptions, context: GeneratorContext) -> None:
    height, width = context.image_size
    factor = 2**options.n_downsample
    if height % factor or width % factor or min(height, width) < 2 * factor:
        raise SpadekitError(
            f"The pix2pixhd generator cannot make {width}x{height} images: with model.n_downsample = "
            f"{options.n_downsample} both sides must be multiples of {factor} and at least {2 * factor}; change "
            "data.crop_size / data.aspect_ratio or model.n_downsample."
        )
