"""The OASIS generator (reference models/generator.py `OASIS_Generator`), with the reference's submodule names.

The label map, with z_dim noise channels in front of it (the "3D noise"), is nearest-resized to the first
feature size and convolved to 16*ngf channels (`fc`); then num_res_blocks SPADE residual blocks (`body.i`),
each but the last followed by 2x nearest upsampling, and a 3x3 conv to RGB after a leaky ReLU, then tanh.
Every SPADE of every block is conditioned on the same noise + label tensor, nearest-resized to its feature
size. Keys are the reference's (`fc`, `body.i.conv_0|conv_1|conv_s`, `body.i.norm_0|norm_1|norm_s.first_norm|
mlp_shared.0|mlp_gamma|mlp_beta`, `conv_img`); spectral norm is torch's parametrization (its keys
`X.parametrizations.weight.original/0._u/0._v` for the reference's `X.weight_orig/weight_u/weight_v`), with
the reference's power-iteration order (`spadekit_plugins.oasis.layers`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.plugin import GeneratorContext, SpadekitError, param_free_norm, resize_segmap
from spadekit_plugins.oasis.layers import conv
from spadekit_plugins.oasis.spec import G_WIDTHS, OasisOptions


class OASISGenerator(nn.Module):
    """OASIS's generator; a `spadekit.generator.Generator` with `encoder = None` and, with 3D noise, `z_dim`.

    The noise contract of `forward(semantics, z=None)` (the trainer, synth, bench and local resampling rely on
    it), semantics being B x semantic_nc x H x W at the output size:
    - z None: per-image noise drawn from N(0, 1) as the reference draws it in training and testing
      (`torch.randn(B, z_dim)` in float32 on the semantics' device, broadcast over H x W);
    - z of shape B x z_dim: one latent per image, broadcast over H x W;
    - z of shape B x z_dim x H x W: a latent per pixel at the output size (another size is nearest-resized to
      it); a block at a smaller size sees it nearest-resized together with the label map, as the reference
      resizes the concatenated noise + label tensor. A region's latent thus changes the image there only (up
      to the convolutions' reach): OASIS's local resampling (paper Section 3.3).
    The noise channels come first in the concatenation ([z, semantics]), as in the reference.
    Without 3D noise (`noise_3d = false`) `z_dim` is None and z must be None.
    """

    plugin_name = "oasis"
    spatial_latent = True  # z may be B x z_dim x H x W (spadekit.synthesis local resampling)
    encoder = None  # no image encoder: OASIS's multimodality is the 3D noise

    def __init__(self, options: OasisOptions, context: GeneratorContext):
        super().__init__()
        self.options = options
        n, ch = options.num_res_blocks, options.ngf
        height, width = context.image_size
        # reference compute_latent_vector_size: w = crop_size // 2^(n-1), h = round(w / aspect_ratio)
        self.init_w = context.crop_size // 2 ** (n - 1)
        self.init_h = round(self.init_w / context.aspect_ratio)
        if self.init_w < 1 or self.init_h < 1 or (self.init_h << (n - 1), self.init_w << (n - 1)) != (height, width):
            raise SpadekitError(
                f"The oasis generator cannot make {width}x{height} images: with num_res_blocks = {n} both sides must "
                f"be multiples of {2 ** (n - 1)}; change data.crop_size / data.aspect_ratio or model.num_res_blocks."
            )
        self.z_dim = options.z_dim if options.noise_3d else None
        cond_nc = context.semantic_nc + (self.z_dim or 0)
        widths = [w * ch for w in G_WIDTHS[-(n + 1):]]
        self.fc = conv(cond_nc, widths[0], 3)
        self.body = nn.ModuleList(
            ResnetBlockWithSPADE(widths[i], widths[i + 1], cond_nc, options) for i in range(n)
        )
        self.conv_img = conv(widths[-1], 3, 3)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        seg = semantics
        if self.z_dim is not None:
            seg = torch.cat((self.noise_map(semantics, z), semantics), 1)
        elif z is not None:
            raise ValueError("this oasis generator was built without 3D noise (noise_3d = false): it takes no z")
        x = self.fc(resize_segmap(seg, (self.init_h, self.init_w)))
        last = len(self.body) - 1
        for i, block in enumerate(self.body):
            x = block(x, seg)
            if i < last:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))

    def noise_map(self, semantics: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """The B x z_dim x H x W noise of `forward`'s contract, in the semantics' dtype."""
        b, _, h, w = semantics.shape
        if z is None:
            z = torch.randn(b, self.z_dim, dtype=torch.float32, device=semantics.device)
        if z.dim() == 2 and tuple(z.shape) == (b, self.z_dim):
            return z.to(semantics.dtype).view(b, self.z_dim, 1, 1).expand(b, self.z_dim, h, w)
        if z.dim() == 4 and tuple(z.shape[:2]) == (b, self.z_dim):
            if tuple(z.shape[2:]) != (h, w):
                z = F.interpolate(z, size=(h, w), mode="nearest")
            return z.to(semantics.dtype)
        raise ValueError(f"z must be {b} x {self.z_dim} or {b} x {self.z_dim} x H x W for {b} label maps, "
                         f"not {tuple(z.shape)}")


class OasisSPADE(nn.Module):
    """Reference norms.SPADE: `first_norm(x) * (1 + gamma) + beta`, gamma and beta from a conv net on the
    noise + label tensor nearest-resized to x's size (no spectral norm on these convs)."""

    def __init__(self, norm_nc: int, label_nc: int, options: OasisOptions):
        super().__init__()
        ks, hidden = options.kernel_size, options.hidden
        self.first_norm = param_free_norm(options.norm, norm_nc)
        self.mlp_shared = nn.Sequential(conv(label_nc, hidden, ks), nn.ReLU())
        self.mlp_gamma = conv(hidden, norm_nc, ks)
        self.mlp_beta = conv(hidden, norm_nc, ks)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = self.first_norm(x)
        actv = self.mlp_shared(resize_segmap(segmap, x.shape[-2:]))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class ResnetBlockWithSPADE(nn.Module):
    """Reference `ResnetBlock_with_SPADE`: SPADE, leaky ReLU 0.2, conv twice (fin -> min(fin, fout) -> fout),
    plus the input, through SPADE and a bias-free 1x1 conv when the width changes."""

    def __init__(self, fin: int, fout: int, label_nc: int, options: OasisOptions):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        sn = options.spectral
        self.conv_0 = conv(fin, fmiddle, 3, spectral=sn)
        self.conv_1 = conv(fmiddle, fout, 3, spectral=sn)
        if self.learned_shortcut:
            self.conv_s = conv(fin, fout, 1, bias=False, spectral=sn)
        self.norm_0 = OasisSPADE(fin, label_nc, options)
        self.norm_1 = OasisSPADE(fmiddle, label_nc, options)
        if self.learned_shortcut:
            self.norm_s = OasisSPADE(fin, label_nc, options)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx
