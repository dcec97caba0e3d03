"""The fast inference path of a generator, shared by synth, bench and serve.

What changes against the training-time module, none of which changes what it computes beyond rounding:
- eval mode: batch norms use their running statistics, spectral norm its stored estimate of sigma;
- spectral norm folded into the weights (`W / sigma` once, instead of per forward);
- every SPADE block on its fast path (`spadekit.nn.spade_fast`): on CPUs the block from window tables (per-class
  rows inside uniform regions, per-window rows along their borders, the batch norm folded in), else the one-hot
  semantics read as table lookups and gamma, beta as per-class tables inside uniform regions; everywhere the
  modulation in place;
- under bf16/fp16, the conv and linear weights stored in that precision (autocast would round them on every
  forward; the result is the same);
- channels_last memory format for the weights (faster convolutions on CPUs and GPUs) and, on GPUs, the input
  (on CPUs the fast path reads the semantics as table lookups, for which relaying out the input is a wasted
  pass over it: 33 ms for COCO-Stuff's 184 x 256 x 256);
- reduced precision where the hardware runs it natively: bf16 autocast on CPUs with AVX512-BF16 or AMX and
  on GPUs with bf16 (Ampere and later), fp16 on older GPUs; fp32 elsewhere.

Tolerance (tested in tests/test_inference.py against the plain fp32 module): fp32 fast path >= 60 dB PSNR
(identical up to float rounding), bf16/fp16 >= 30 dB PSNR over images in [-1, 1] mapped to [0, 255].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spadekit.device import DTYPES, autocast
from spadekit.nn.layers import fold_spectral_norm
from spadekit.nn.spade_fast import FastSPADE, enable_fast_path


def prepare(generator: nn.Module, device: torch.device, precision: str = "fp32", compile: bool = False) -> nn.Module:
    """The generator in eval mode, spectral norm folded, SPADE's fast path on, channels_last, on `device`
    (in place); under bf16/fp16, the weights that autocast would cast on every forward cast once.

    `compile`: instead of the fast path, the SPADE blocks' plain form compiled with the rest by torch.compile
    (`nn.Module.compile`; on GPUs in mode "reduce-overhead", whose CUDA graphs replay a batch-1 forward's few
    hundred kernel launches at once). The first forward of each input shape compiles: it pays for a server
    (`spadekit serve --compile`), not for one command."""
    generator.eval()
    fold_spectral_norm(generator)
    if not compile:  # the fast path's data-dependent tables and lookups do not trace
        enable_fast_path(generator)
    generator.to(device=device, memory_format=torch.channels_last)
    if precision in ("bf16", "fp16"):
        cast_conv_weights(generator, DTYPES[precision])
    if compile:
        cuda_graphs = torch.device(device).type == "cuda"
        generator.compile(mode="reduce-overhead" if cuda_graphs else None)
        generator.replays_cuda_graphs = cuda_graphs  # `run` copies the output out of the graph's memory
    return generator


# the layers whose forward autocast runs in reduced precision, weight included (their subclasses may not)
_AUTOCAST_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def cast_conv_weights(model: nn.Module, dtype: torch.dtype) -> None:
    """Store the weights and biases of `model`'s conv and linear layers in `dtype`, except inside SPADE blocks
    on the fast path, whose tables read their weights in fp32, and inside the image encoder (`model.encoder`),
    which synthesis runs in fp32 outside autocast. Under autocast to `dtype` these layers compute exactly as
    before (autocast rounds an fp32 weight to `dtype` on every call; now it is stored rounded), minus a copy of
    every weight per forward (about 30 ms of a 250 ms bf16 forward on two CPU cores)."""
    kept = [block for block in model.modules() if isinstance(block, FastSPADE)]
    if isinstance(getattr(model, "encoder", None), nn.Module):
        kept.append(model.encoder)
    skip = {id(m) for block in kept for m in block.modules()}
    for module in model.modules():
        if type(module) in _AUTOCAST_LAYERS and id(module) not in skip:
            module.to(dtype)


@torch.no_grad()
def run(generator: nn.Module, semantics: Tensor, z: Tensor | None, precision: str) -> Tensor:
    """Forward a prepared generator under the precision's autocast (semantics channels_last on GPUs); fp32 out."""
    if semantics.device.type == "cuda":
        semantics = semantics.contiguous(memory_format=torch.channels_last)
    with autocast(precision, semantics.device):
        out = generator(semantics, z)
    if getattr(generator, "replays_cuda_graphs", False) and out.dtype == torch.float32:
        return out.clone()  # CUDA graphs reuse their output's memory on the next call: the caller gets its own
    return out.float()


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB between two images in [-1, 1], as 8-bit images would be compared (peak 255)."""
    mse = ((a.float() - b.float()) * 127.5).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
