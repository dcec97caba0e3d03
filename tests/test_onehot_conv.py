"""SPADE's first conv on the one-hot semantics as table lookups (`spadekit.nn.onehot`) equals F.conv2d."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import spadekit.nn.spade_fast as spade_fast
from spadekit.generator import GeneratorContext, build_generator
from spadekit.nn.onehot import one_hot_conv2d, one_hot_conv_pays, one_hot_labels
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.nn.spade import SPADE
from spadekit.nn.spade_fast import FastSPADE, enable_fast_path


def _semantics(batch, one_hot_nc, extra, height, width, seed=0, empty=0.0):
    """Random one-hot labels (a fraction `empty` of the pixels all-zero) and `extra` 0/1 channels."""
    gen = torch.Generator().manual_seed(seed)
    label = torch.randint(0, one_hot_nc, (batch, 1, height, width), generator=gen)
    semantics = torch.zeros(batch, one_hot_nc + extra, height, width)
    semantics.scatter_(1, label, 1.0)
    if empty:
        semantics[:, :one_hot_nc] *= (torch.rand(batch, 1, height, width, generator=gen) >= empty).float()
    if extra:
        semantics[:, one_hot_nc:] = (torch.rand(batch, extra, height, width, generator=gen) < 0.3).float()
    return semantics


def _conv_params(out_nc, in_nc, k, seed=1, bias=True):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_nc, in_nc, k, k, generator=gen).requires_grad_()
    b = torch.randn(out_nc, generator=gen).requires_grad_() if bias else None
    return weight, b


def _close(a, b, rel=1e-5):
    scale = max(b.abs().max().item(), 1.0)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert (a - b).abs().max().item() <= rel * scale, (a - b).abs().max().item()


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("extra", [0, 1, 2])
def test_equals_conv2d_with_weight_and_bias_gradients(k, extra):
    # batch 2, non-square, small enough that most pixels see the zero padding at some tap
    semantics = _semantics(2, 7, extra, 6, 11)
    weight, bias = _conv_params(5, 7 + extra, k)
    ref = F.conv2d(semantics, weight, bias, padding=k // 2)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (weight, bias), grad)
    out = one_hot_conv2d(semantics, weight, bias, 7, k // 2)
    _close(out, ref)
    for got, want in zip(torch.autograd.grad(out, (weight, bias), grad), ref_grads, strict=True):
        _close(got, want)


def test_all_zero_pixels_and_no_bias():
    semantics = _semantics(3, 6, 1, 9, 5, empty=0.3)
    weight, _ = _conv_params(4, 7, 3, bias=False)
    assert (one_hot_labels(semantics, 6) == 6).any()
    ref = F.conv2d(semantics, weight, None, padding=1)
    out = one_hot_conv2d(semantics, weight, None, 6, 1)
    _close(out, ref)
    _close(torch.autograd.grad(out.square().sum(), weight)[0], torch.autograd.grad(ref.square().sum(), weight)[0])


def test_a_frozen_weight_gets_no_gradient_and_the_bias_still_does():
    semantics = _semantics(2, 5, 1, 6, 7)
    weight, bias = _conv_params(4, 6, 3)
    weight.requires_grad_(False)
    out = one_hot_conv2d(semantics, weight, bias, 5, 1)
    out.square().sum().backward()
    F.conv2d(semantics, weight, ref_bias := bias.detach().clone().requires_grad_(), padding=1).square().sum().backward()
    assert weight.grad is None
    _close(bias.grad, ref_bias.grad)


def test_gradcheck_in_float64():
    semantics = _semantics(2, 3, 1, 3, 4).double()
    weight, bias = _conv_params(2, 4, 3)
    weight, bias = weight.detach().double().requires_grad_(), bias.detach().double().requires_grad_()
    assert torch.autograd.gradcheck(lambda w, b: one_hot_conv2d(semantics, w, b, 3, 1), (weight, bias))


def test_layout_is_channels_last_only_without_grad_and_for_large_maps():
    semantics = _semantics(1, 5, 1, 128, 128)
    weight, bias = _conv_params(8, 6, 3)
    out = one_hot_conv2d(semantics, weight, bias, 5, 1)
    assert out.is_contiguous()
    with torch.no_grad():
        fast = one_hot_conv2d(semantics, weight, bias, 5, 1)
        assert one_hot_conv2d(semantics[..., :64], weight, bias, 5, 1).is_contiguous()
    assert fast.is_contiguous(memory_format=torch.channels_last) and not fast.is_contiguous()
    assert torch.equal(fast, out.detach())
    forced = one_hot_conv2d(semantics[:, :, :4, :6], weight, bias, 5, 1, channels_last=True)
    assert forced.is_contiguous(memory_format=torch.channels_last)
    _close(forced[:, :, 1:3, 1:5], out[:, :, 1:3, 1:5].detach())  # a crop: the same values away from its border


def test_refuses_semantics_that_require_grad_and_bad_geometry():
    semantics = _semantics(1, 4, 0, 5, 5)
    weight, bias = _conv_params(3, 4, 3)
    with pytest.raises(ValueError, match="gradient"):
        one_hot_conv2d(semantics.requires_grad_(), weight, bias, 4, 1)
    with pytest.raises(ValueError, match="padding"):
        one_hot_conv2d(semantics.detach(), weight, bias, 4, 0)
    with pytest.raises(ValueError, match="do not fit"):
        one_hot_conv2d(semantics.detach(), weight, bias, 5, 1)


def test_autocast_bfloat16_runs_and_matches_loosely():
    semantics = _semantics(1, 6, 1, 4, 5)
    weight, bias = _conv_params(4, 7, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.conv2d(semantics, weight, bias, padding=1)
        out = one_hot_conv2d(semantics, weight, bias, 6, 1)
    assert out.dtype == ref.dtype == torch.bfloat16
    assert (out.float() - ref.float()).abs().max() <= 0.05 * ref.float().abs().max()
    grads = torch.autograd.grad(out.float().sum(), (weight, bias))
    ref_grads = torch.autograd.grad(F.conv2d(semantics, weight, bias, padding=1).sum(), (weight, bias))
    for got, want in zip(grads, ref_grads, strict=True):
        assert got.dtype == torch.float32 and torch.allclose(got, want, atol=0.05 * want.abs().max())


def test_spade_fast_path_gives_the_plain_output_and_gradients():
    torch.manual_seed(0)
    plain = SPADE(6, 9, "batch", 3, hidden=16)
    fast = enable_fast_path(SPADE(6, 9, "batch", 3, hidden=16, one_hot_nc=8))
    assert list(fast.state_dict()) == list(plain.state_dict())  # official checkpoint keys, key for key
    fast.load_state_dict(plain.state_dict())
    fast.use_one_hot_conv = True
    segmap = _semantics(2, 8, 1, 8, 8)
    x = torch.randn(2, 6, 4, 4, requires_grad=True)  # the segmap is resized to x's size
    outs, grads = [], []
    for module in (plain, fast):
        out = module(x, segmap)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), [x, *module.parameters()]))
    _close(outs[1], outs[0])
    for got, want in zip(*reversed(grads), strict=True):
        _close(got, want)


def test_the_fast_spade_picks_the_lookups_by_its_rule_and_the_plain_block_never(monkeypatch):
    calls = []
    real = spade_fast.one_hot_conv2d
    monkeypatch.setattr(spade_fast, "one_hot_conv2d", lambda *a, **k: calls.append(1) or real(*a, **k))
    plain = SPADE(4, 6, "batch", hidden=8, one_hot_nc=5)
    segmap = _semantics(1, 5, 1, 8, 8)
    x = torch.randn(1, 4, 8, 8)
    plain(x, segmap)
    assert not calls
    spade = enable_fast_path(plain)
    assert not one_hot_conv_pays(5, 64) and one_hot_conv_pays(184, 256 * 256)
    spade(x, segmap)
    assert not calls  # a tiny label space at 8x8: the plain conv
    spade.use_one_hot_conv = True
    spade(x, segmap)
    assert len(calls) == 1
    spade(x, segmap.clone().requires_grad_())  # a segmap that wants a gradient takes the plain conv
    spade.use_one_hot_conv = False
    spade(x, segmap)
    assert len(calls) == 1


def test_spade_generator_output_and_gradients_equal_with_and_without_the_fast_path():
    space = LabelSpace(5, dontcare=True, use_instance=True)  # 6 one-hot channels + instance edges
    plain = build_generator("spade", {"ngf": 8}, GeneratorContext(space, 64, 1.0))
    fast = enable_fast_path(copy.deepcopy(plain))
    spades = [b for b in fast.modules() if isinstance(b, SPADE)]
    assert spades and all(type(b) is FastSPADE and b.one_hot_nc == space.one_hot_nc for b in spades)
    for b in spades:
        b.use_one_hot_conv = True
    gen = torch.Generator().manual_seed(0)
    label = torch.randint(0, space.one_hot_nc, (2, 1, 64, 64), generator=gen)
    edge = (torch.rand(2, 1, 64, 64, generator=gen) < 0.2).float()
    semantics = to_semantics(label, edge, space)
    out_plain, out_fast = plain(semantics), fast(semantics)  # train mode: batch statistics, power iteration
    _close(out_fast, out_plain)
    grads = [torch.autograd.grad(out.square().mean(), list(g.parameters())) for out, g in
             ((out_plain, plain), (out_fast, fast))]
    for got, want in zip(grads[1], grads[0], strict=True):
        _close(got, want, rel=1e-4)
    plain.eval(), fast.eval()
    with torch.no_grad():
        _close(fast(semantics), plain(semantics))
