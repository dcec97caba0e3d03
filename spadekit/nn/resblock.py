"""The SPADE residual block (paper Figure 4, right; official `SPADEResnetBlock`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.nn.layers import conv2d
from spadekit.nn.norm_names import ParamFreeNorm
from spadekit.nn.spade import SPADE


class SPADEResBlock(nn.Module):
    """Two (SPADE, LeakyReLU 0.2, 3x3 conv) units with a skip; when the width changes the skip is learned:
    SPADE then a 1x1 conv without bias or activation (`conv_s`, `norm_s`). `one_hot_nc`: see `SPADE`."""

    def __init__(self, fin: int, fout: int, label_nc: int, norm: ParamFreeNorm = "sync_batch", kernel_size: int = 3,
                 hidden: int = 128, spectral: bool = True, one_hot_nc: int | None = None):
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = conv2d(fin, fmiddle, 3, spectral=spectral)
        self.conv_1 = conv2d(fmiddle, fout, 3, spectral=spectral)
        self.norm_0 = SPADE(fin, label_nc, norm, kernel_size, hidden, one_hot_nc)
        self.norm_1 = SPADE(fmiddle, label_nc, norm, kernel_size, hidden, one_hot_nc)
        if self.learned_shortcut:
            self.conv_s = conv2d(fin, fout, 1, bias=False, spectral=spectral)
            self.norm_s = SPADE(fin, label_nc, norm, kernel_size, hidden, one_hot_nc)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x
        inplace = not torch.is_grad_enabled()  # SPADE's output is a fresh tensor: no second feature-map buffer
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap), 0.2, inplace=inplace))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap), 0.2, inplace=inplace))
        return dx.add_(x_s) if inplace else x_s + dx
