"""A convolution of a one-hot label map computed as table lookups (SPADE's first conv on the semantics).

When the first `one_hot_nc` input channels hold exactly one 1 per pixel, a conv is a sum of weight columns:
`out[:, y, x] = bias + sum over offsets (dy, dx) of W[:, label(y + dy, x + dx), dy, dx]`, where an offset
falling outside the image adds nothing (zero padding), plus the ordinary conv of the remaining channels (the
instance edges). For COCO-Stuff (184 channels) that replaces ~1656 multiply-adds per output value by 9
row gathers. The label map is data: no gradient flows to the semantics, only to the weight and bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

MIN_ONE_HOT_NC, MIN_PIXELS = 64, 32 * 32  # fwd+bwd ms conv/lookup: 184ch 32px 9.6/5.1, 16px 3.6/3.9; 36ch 64px 9.6/10.8


def one_hot_conv_pays(one_hot_nc: int, pixels: int, device_type: str = "cpu") -> bool:
    """Whether `one_hot_conv2d` beats the plain conv for `one_hot_nc` one-hot channels and `pixels` output
    pixels (batch x height x width) on this kind of device.

    Measured for 3x3 -> 128 in fp32 on 2 AVX2 cores (benchmarks/spade_onehot.py), ms plain/lookup, batch 1,
    forward and forward+backward: 184 channels 256px 255/40 and 768/221, 64px 14/2.9 and 32/9.8, 32px 3.6/2.1
    and 9.6/5.1, 16px 1.4/1.5 and 3.6/3.9, 8px 0.55/1.2 and 1.7/3.5 (batch 4: 16px 3.3/2.1 and 7.8/4.9, 8px
    1.4/1.4 and 2.7/3.0); 64 channels 32px 1.7/1.4 and 5.5/4.0, 16px 0.54/0.71 and 1.3/2.0; 36 channels (the
    backward's cost does not fall with the channels) 256px 85/35 and 200/202, 64px 3.3/1.9 and 9.6/10.8; 10
    channels 256px 70/46 and 144/178. On CUDA (H100) never: cuDNN takes 0.25 ms at 184 channels 256px, the
    lookup's dozen small kernels 0.74 ms, and 8-256px alike.
    """
    return device_type == "cpu" and one_hot_nc >= MIN_ONE_HOT_NC and pixels >= MIN_PIXELS


def one_hot_labels(semantics: torch.Tensor, one_hot_nc: int) -> torch.Tensor:
    """B x C x H x W semantics -> B x H x W int64 label ids: the index of the 1 among the first `one_hot_nc`
    channels, or `one_hot_nc` where they are all zero. The channels must hold only 0s and one 1 per pixel."""
    onehot = semantics[:, :one_hot_nc].detach()
    if onehot.dtype not in (torch.float32, torch.float64):
        onehot = onehot.float()
    ids = torch.arange(1, one_hot_nc + 1, dtype=onehot.dtype, device=onehot.device)
    with torch.autocast(semantics.device.type, enabled=False):
        # sum_c (c + 1) * onehot_c is exact (a single nonzero term), and a matvec reads the map once, much
        # faster than argmax over the channel dimension.
        codes = torch.matmul(ids, onehot.flatten(2))
    labels = (codes.long() - 1).remainder_(one_hot_nc + 1)  # all-zero pixels: -1 -> one_hot_nc
    return labels.view(semantics.shape[0], *semantics.shape[2:])


def one_hot_conv2d(semantics: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, one_hot_nc: int,
                   padding: int, channels_last: bool | None = None,
                   labels: torch.Tensor | None = None) -> torch.Tensor:
    """`F.conv2d(semantics, weight, bias, padding=padding)` (stride 1, odd kernel, padding kernel // 2) for
    semantics whose first `one_hot_nc` channels are one-hot per pixel (all-zero pixels are fine too).

    Gradients flow to `weight` and `bias` only: `semantics` must not require grad (ValueError if it does).
    Under autocast the result has the autocast dtype, as the conv's would; it is computed in fp32.
    Returns N x out x H x W, in channels_last memory format if `channels_last`, else contiguous; by default
    as `channels_last_pays` (channels_last for large maps when grad mode is off). `labels`: the semantics'
    `one_hot_labels`, when the caller has them already.
    """
    if semantics.requires_grad:
        raise ValueError("one_hot_conv2d gives no gradient w.r.t. the semantics; pass a tensor without grad")
    out_nc, in_nc, kh, kw = weight.shape
    if kh != kw or kh % 2 == 0 or padding != kh // 2:
        raise ValueError(f"one_hot_conv2d needs an odd square kernel with padding k // 2, got {kh}x{kw}, "
                         f"padding {padding}")
    if semantics.dim() != 4 or semantics.shape[1] != in_nc or not 0 < one_hot_nc <= in_nc:
        raise ValueError(f"semantics {tuple(semantics.shape)} do not fit a weight {tuple(weight.shape)} with "
                         f"{one_hot_nc} one-hot channels")
    dtype = _autocast_dtype(semantics.device.type) or weight.dtype
    with torch.autocast(semantics.device.type, enabled=False):
        if channels_last is None:
            channels_last = channels_last_pays(semantics.device.type, semantics[:, 0].numel())
        if labels is None:
            labels = one_hot_labels(semantics, one_hot_nc)
        out = _OneHotConv.apply(semantics.detach(), weight, bias, one_hot_nc, channels_last, labels)
    return out if out.dtype == dtype else out.to(dtype)


class _OneHotConv(torch.autograd.Function):
    """The lookup conv with its weight and bias gradients written directly (no autograd graph over the table:
    at small sizes its copies cost more than the lookups). Computes in fp32 (fp64 for an fp64 weight)."""

    @staticmethod
    def forward(ctx, semantics: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                one_hot_nc: int, channels_last: bool, labels: torch.Tensor) -> torch.Tensor:
        batch, in_nc, height, width = semantics.shape
        out_nc, k = weight.shape[0], weight.shape[-1]
        p, taps = k // 2, k * k
        compute = weight.dtype if weight.dtype in (torch.float32, torch.float64) else torch.float32
        # Row c * taps + t of the weight's 2-D transpose is W[:, c, dy, dx] for tap t = dy * k + dx (a plain
        # 2-D transpose: a blocked copy, unlike other permutations of the weight, which cost ~1 ms).
        rows = weight.detach().to(compute).reshape(out_nc, in_nc * taps).t().contiguous()
        # The table: the one-hot channels' rows, then a zero row per tap for label `one_hot_nc` (zero padding,
        # all-zero pixels). The centre tap always lands inside the image, so the bias goes into its rows
        # instead of costing a pass over the output.
        table = torch.cat([rows[:one_hot_nc * taps], rows.new_zeros(taps, out_nc)])
        if bias is not None:
            table.view(one_hot_nc + 1, taps, out_nc)[:, taps // 2] += bias.detach().to(compute)
        labels = labels.int() * taps  # int32 indices: half the memory
        labels = F.pad(labels, (p, p, p, p), value=one_hot_nc * taps)
        index = torch.stack([labels[:, dy:dy + height, dx:dx + width] for dy in range(k) for dx in range(k)], -1)
        index += torch.arange(taps, dtype=index.dtype, device=index.device)
        index = index.view(batch, height * width, taps)  # table rows to sum, per output pixel
        rest = None
        if in_nc > one_hot_nc:  # the other channels (instance edges): a GEMM over their k*k patches
            rest = F.unfold(semantics[:, one_hot_nc:].to(compute), k, padding=p)  # B x (rest * taps) x HW
        if channels_last:
            out = table.new_empty(batch, height, width, out_nc)
            dest = out.view(batch, height * width, out_nc)
        else:
            out = table.new_empty(batch, out_nc, height, width)
            dest = out.view(batch, out_nc, height * width).transpose(1, 2)
        # Pixel chunks: the lookups and the edge GEMM stay in cache and only the result is written out
        # (a whole-image temporary costs a pass over memory and, at 32 MiB and up, fresh pages each call).
        for chunk in _chunks(batch, height * width):
            part = F.embedding_bag(chunk(index).reshape(-1, taps), table, mode="sum")
            if rest is not None:
                part.addmm_(chunk(rest.transpose(1, 2)).reshape(-1, rest.shape[1]), rows[one_hot_nc * taps:])
            chunk(dest).copy_(part.view(chunk(dest).shape))
        ctx.save_for_backward(index, rest)
        ctx.meta = (one_hot_nc, weight.shape, weight.dtype, bias is not None)
        return out.permute(0, 3, 1, 2) if channels_last else out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        index, rest = ctx.saved_tensors
        one_hot_nc, shape, dtype, has_bias = ctx.meta
        if not any(ctx.needs_input_grad):
            return None, None, None, None, None, None
        out_nc, in_nc, k, _ = shape
        taps = k * k
        batch, pixels = index.shape[:2]
        if grad.is_contiguous(memory_format=torch.channels_last):
            grad = grad.permute(0, 2, 3, 1).reshape(batch, pixels, out_nc)
        else:
            grad = grad.contiguous().view(batch, out_nc, pixels).transpose(1, 2)
        grad_rows = grad.new_zeros(one_hot_nc + 1, taps, out_nc)  # row (label, tap) of the table
        grad_rest = grad.new_zeros(rest.shape[1], out_nc) if rest is not None else None
        for chunk in _chunks(batch, pixels):
            part = chunk(grad).reshape(-1, out_nc).contiguous()  # pixels x out (a transposing copy if NCHW)
            labels = chunk(index).reshape(-1, taps).div(taps, rounding_mode="floor")
            for t in range(taps):
                # the output gradient summed per label looked up at tap t (the dense embedding backward:
                # F.embedding_bag's own backward is ~5x slower on CPU)
                grad_rows[:, t] += torch.ops.aten.embedding_dense_backward(part, labels[:, t], one_hot_nc + 1,
                                                                           -1, False)
            if rest is not None:
                grad_rest.addmm_(chunk(rest.transpose(1, 2)).reshape(-1, rest.shape[1]).t(), part)
        grad_bias = grad_rows[:, taps // 2].sum(0).to(dtype) if has_bias and ctx.needs_input_grad[2] else None
        grad_rows = grad_rows[:one_hot_nc].view(one_hot_nc * taps, out_nc)
        if rest is not None:
            grad_rows = torch.cat([grad_rows, grad_rest])
        grad_weight = grad_rows.t().contiguous().view(shape).to(dtype) if ctx.needs_input_grad[1] else None
        return None, grad_weight, grad_bias, None, None, None


CHUNK = 4096  # output pixels per lookup chunk (2-8k measured alike; a whole 256x256 image: ~1.5x slower)


def _chunks(batch: int, pixels: int):
    """Slicers of B x pixels x ... tensors into pieces of about CHUNK pixels: the whole batch at once when
    it fits in one, else per image."""
    if batch * pixels <= CHUNK:
        yield lambda t: t
        return
    for b in range(batch):
        for start in range(0, pixels, CHUNK):
            yield lambda t, b=b, start=start: t[b, start:start + CHUNK]


def channels_last_pays(device_type: str, pixels: int) -> bool:
    """Whether `one_hot_conv2d` should leave its result channels_last (NHWC rows, as the lookups make it)
    rather than NCHW, for SPADE's next convs (mlp_gamma, mlp_beta) on CPU: their backward is ~2.5x slower on
    channels_last input; forward, SPADE(64) at 256x256 takes 230 ms with it vs 267 NCHW, SPADE(128) at
    128x128 103 vs 114, and at 64x64 and below it is a wash (+-5%). So: only without grad, from 128x128 up."""
    return device_type == "cpu" and not torch.is_grad_enabled() and pixels >= 128 * 128


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        enabled = torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()
        if enabled:
            return torch.get_autocast_cpu_dtype() if device_type == "cpu" else torch.get_autocast_gpu_dtype()
    if enabled:
        return torch.get_autocast_dtype(device_type)
    return None
