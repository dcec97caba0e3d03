"""SPADE's inference fast path: the block's Eq. 1 (`spadekit.nn.spade.SPADE`), computed faster.

`enable_fast_path(generator)` switches it on for every SPADE block of a generator; `spadekit.inference.prepare`
does, and nothing else does (training and the plain block compute the paper's form as written). It changes
the result only by float rounding (tests/test_inference.py, tests/test_spade_tables.py, tests/test_onehot_conv.py,
tests/test_regions.py):
- at inference on CPU, first choice: the whole block from window tables (`spadekit.nn.spade_tables`: per-class
  rows inside uniform regions, per-window rows along their borders, the batch norm folded in);
- where those decline: `mlp_shared`'s conv on the one-hot segmap runs as table lookups (`spadekit.nn.onehot`)
  where they pay, and without grad gamma and beta come from per-class tables inside uniform regions
  (`spadekit.nn.regions`), the convolutions along the borders;
- without grad, the modulation runs in place: no fresh feature-map-sized buffers.
Parameters, buffers and state-dict keys stay the block's, so checkpoints load and save alike.
"""

from __future__ import annotations

import torch
from torch import nn

from spadekit.nn.label_layout import layout_of
from spadekit.nn.onehot import one_hot_conv2d, one_hot_conv_pays, one_hot_labels
from spadekit.nn.regions import region_modulation
from spadekit.nn.spade import SPADE, resize_segmap
from spadekit.nn.spade_tables import tabled_spade


class FastSPADE(SPADE):
    """A SPADE block on the fast path; `enable_fast_path` makes one by re-classing a `SPADE` in place.

    `use_one_hot_conv`: None (default) takes the lookups where `one_hot_conv_pays`, True always, False never
    (the lookups also need the block's `one_hot_nc` and a segmap that does not require grad).
    """

    use_one_hot_conv: bool | None = None

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        if self._tables_apply(segmap):
            out = tabled_spade(self, x, layout_of(segmap, x.shape[-2:], self.one_hot_nc))
            if out is not None:
                return out
        normalized = self.param_free_norm(x)
        segmap = resize_segmap(segmap, x.shape[-2:])
        gamma, beta = self._lookup_modulation(segmap) if self._lookups_pay(segmap) else self._conv_modulation(segmap)
        if torch.is_grad_enabled():
            return normalized * (1 + gamma) + beta
        return normalized.mul_(gamma.add_(1)).add_(beta)  # in place: no fresh feature-map-sized buffers

    def _conv_modulation(self, segmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actv = self.mlp_shared(segmap)
        return self.mlp_gamma(actv), self.mlp_beta(actv)

    def _lookup_modulation(self, segmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma and beta with `mlp_shared`'s conv as lookups and, without grad, region tables where they gain."""
        conv, relu = self.mlp_shared
        labels = one_hot_labels(segmap, self.one_hot_nc)  # once, for the lookups and the region tables
        actv = relu(one_hot_conv2d(segmap, conv.weight, conv.bias, self.one_hot_nc, conv.padding[0], labels=labels))
        maps = None if torch.is_grad_enabled() else \
            region_modulation(segmap, actv, conv, self.mlp_gamma, self.mlp_beta, self.one_hot_nc, labels)
        return maps or (self.mlp_gamma(actv), self.mlp_beta(actv))

    def _tables_apply(self, segmap: torch.Tensor) -> bool:
        """Inference on CPU with a one-hot segmap: `spadekit.nn.spade_tables` (which still declines where the
        tables do not pay)."""
        return (self.one_hot_nc is not None and self.use_one_hot_conv is not False and not torch.is_grad_enabled()
                and not self.training and segmap.device.type == "cpu")

    def _lookups_pay(self, segmap: torch.Tensor) -> bool:
        if self.one_hot_nc is None or self.use_one_hot_conv is False or segmap.requires_grad:
            return False
        pixels = segmap.shape[0] * segmap.shape[2] * segmap.shape[3]
        return self.use_one_hot_conv or one_hot_conv_pays(self.one_hot_nc, pixels, segmap.device.type)


def enable_fast_path(model: nn.Module) -> nn.Module:
    """Switch every `SPADE` block in `model` (`model` itself included) to `FastSPADE`, in place; returns `model`.
    Re-classing keeps each block's parameters, buffers, hooks and state-dict keys; subclasses of SPADE, whose
    forward may differ, are left as they are."""
    for module in model.modules():
        if type(module) is SPADE:
            module.__class__ = FastSPADE
    return model
