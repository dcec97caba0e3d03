"""Parameter-free and non-SPADE normalization layers, named as in the official configuration strings.

`sync_batch` is a BatchNorm2d here; the trainer converts it to SyncBatchNorm when it trains with DDP on
CUDA (the state-dict keys are the same), so one checkpoint serves one GPU or many.
"""

from __future__ import annotations

from torch import nn

from spadekit.nn.layers import spectral_norm
from spadekit.nn.norm_names import LayerNorm, ParamFreeNorm


class SyncableBatchNorm2d(nn.BatchNorm2d):
    """A batch norm asked for as `sync_batch`: `convert_sync_batchnorm` turns it into SyncBatchNorm."""


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every `SyncableBatchNorm2d` (and only those: a plain `batch` norm stays per-device) by a
    SyncBatchNorm with the same parameters and statistics, for DDP training on CUDA."""
    if isinstance(module, SyncableBatchNorm2d):
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child))
    return module


def _batch_norm(kind: str, channels: int, affine: bool) -> nn.BatchNorm2d:
    cls = SyncableBatchNorm2d if kind == "sync_batch" else nn.BatchNorm2d
    return cls(channels, affine=affine)


def param_free_norm(kind: ParamFreeNorm, channels: int) -> nn.Module:
    """The normalization SPADE modulates: zero mean, unit variance, no affine parameters (paper Eq. 1)."""
    if kind in ("sync_batch", "batch"):
        return _batch_norm(kind, channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"unknown parameter-free norm {kind!r}; expected sync_batch, batch or instance")


def normalized_conv(conv: nn.Conv2d, norm: LayerNorm) -> nn.Module:
    """Official `get_nonspade_norm_layer`: 'spectral' prefix adds spectral norm; a following norm drops the
    conv's bias (the norm would cancel it) and wraps `Sequential(conv, norm)`."""
    spectral = norm.startswith("spectral")
    kind = norm.removeprefix("spectral")
    if spectral:
        conv = spectral_norm(conv)
    if kind in ("", "none"):
        return conv
    if conv.bias is not None:
        conv.bias = None  # `del`-ing would leave no attribute; None is what a bias-free conv has
    return nn.Sequential(conv, _affine_norm(kind, conv.out_channels))


def _affine_norm(kind: str, channels: int) -> nn.Module:
    if kind in ("sync_batch", "batch"):
        return _batch_norm(kind, channels, affine=True)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)  # official: instance norm is never affine
    raise ValueError(f"unknown norm {kind!r}; expected instance, batch, sync_batch or none")
