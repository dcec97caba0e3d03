"""The fast inference path keeps the generator's output within the stated tolerance of the plain fp32 module."""

from __future__ import annotations

import copy

import pytest
import torch

from spadekit import inference
from spadekit.device import resolve_precision
from spadekit.generator import GeneratorContext, build_generator
from spadekit.nn import regions, spade_fast, spade_tables
from spadekit.nn.layers import has_spectral_norm
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.nn.spade import SPADE

SPACE = LabelSpace(9, dontcare=False, use_instance=True)
MANY = LabelSpace(90, dontcare=False, use_instance=True)  # enough classes for SPADE's table lookups on CPU
FP32_DB, REDUCED_DB = 60.0, 30.0  # the tolerances stated in spadekit.inference


def _generator_and_input(options: dict, space: LabelSpace = SPACE):
    torch.manual_seed(0)
    generator = build_generator("spade", {"ngf": 16, "hidden": 32, **options}, GeneratorContext(space, 64))
    make = _semantics if space is SPACE else _regions
    generator.train()
    with torch.no_grad():  # a few training-mode batches give the batch norms real running statistics
        for _ in range(3):
            generator(make(4), torch.randn(4, generator.z_dim) if generator.z_dim else None)
    generator.eval()
    semantics = make(2, seed=1)
    with torch.no_grad():  # official init (gain 0.02) gives outputs ~1e-4: scale them to span [-1, 1]
        z = torch.zeros(2, generator.z_dim) if generator.z_dim else None
        generator.conv_img.weight *= 0.7 / generator(semantics, z).std()
    return generator, semantics


def _semantics(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 9, (n, 1, 8, 8), generator=g).repeat_interleave(8, 2).repeat_interleave(8, 3)
    semantics = torch.zeros(n, SPACE.semantic_nc, 64, 64).scatter_(1, label, 1.0)
    semantics[:, -1:] = (torch.rand(n, 1, 64, 64, generator=g) > 0.9).float()
    return semantics


def _regions(n: int, seed: int = 0) -> torch.Tensor:
    """MANY's classes on 4 x 4 rectangles of 16 pixels (a painted mask), instance edges on their borders."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 90, (n, 1, 4, 4), generator=g).repeat_interleave(16, 2).repeat_interleave(16, 3)
    edge = torch.zeros(n, 1, 64, 64)
    edge[..., 1:, :] += (label[..., 1:, :] != label[..., :-1, :]).float()
    edge[..., :, 1:] += (label[..., :, 1:] != label[..., :, :-1]).float()
    return to_semantics(label, edge.clamp_(max=1), MANY)


@pytest.mark.parametrize("options", [{}, {"use_vae": True, "z_dim": 8}, {"norm": "instance"}])
def test_fp32_fast_path_matches_the_plain_module(options):
    plain, semantics = _generator_and_input(options)
    z = torch.randn(2, plain.z_dim) if plain.z_dim else None
    with torch.no_grad():
        expected = plain(semantics, z)
    fast = inference.prepare(copy.deepcopy(plain), torch.device("cpu"))
    assert not any(has_spectral_norm(m) for m in fast.modules())  # folded
    assert fast.head_0.conv_0.weight.is_contiguous(memory_format=torch.channels_last)
    out = inference.run(fast, semantics, z, "fp32")
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert inference.psnr(out, expected) >= FP32_DB
    assert (out - expected).abs().max() < 1e-3


def test_bf16_fast_path_stays_within_its_tolerance():
    plain, semantics = _generator_and_input({})
    with torch.no_grad():
        expected = plain(semantics)
    out = inference.run(inference.prepare(copy.deepcopy(plain), torch.device("cpu"), "bf16"), semantics, None,
                        "bf16")
    assert out.dtype == torch.float32
    assert REDUCED_DB <= inference.psnr(out, expected) < FP32_DB  # bf16 really ran: close, not identical


def test_weights_stored_in_bf16_compute_what_autocast_computes():
    # two builds, not two deep copies: folding a copy's spectral norm edits the parametrized class it shares
    plain, semantics = _generator_and_input({}, MANY)
    cast = inference.prepare(plain, torch.device("cpu"), "bf16")
    assert cast.head_0.conv_0.weight.dtype == torch.bfloat16 and cast.conv_img.weight.dtype == torch.bfloat16
    assert cast.head_0.norm_0.mlp_gamma.weight.dtype == torch.float32  # SPADE's tables read fp32 weights
    kept = inference.prepare(_generator_and_input({}, MANY)[0], torch.device("cpu"), "fp32")
    assert torch.equal(inference.run(cast, semantics, None, "bf16"), inference.run(kept, semantics, None, "bf16"))


def test_the_image_encoder_keeps_its_fp32_weights_under_bf16():
    """Synthesis encodes style photos outside autocast: the encoder must not take the bf16 weights."""
    from spadekit.synthesis import Synthesizer

    encodings = []
    for precision in ("fp32", "bf16"):
        plain, _ = _generator_and_input({"use_vae": True, "z_dim": 8})
        engine = Synthesizer(plain, SPACE, "cpu", precision)
        assert engine.generator.encoder.fc_mu.weight.dtype == torch.float32
        encodings.append(engine.encode(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1))
    assert torch.equal(encodings[0].mu, encodings[1].mu)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("path", ["window tables", "lookups and region tables"])
def test_the_table_paths_stay_within_their_tolerance(precision, path, monkeypatch):
    used = []
    if path == "window tables":
        def spy(*args):
            used.append(spade_tables.tabled_spade(*args))
            return used[-1]

        monkeypatch.setattr(spade_fast, "tabled_spade", spy)
    else:
        def spy(*args):
            used.append(regions.region_modulation(*args))
            return used[-1]

        monkeypatch.setattr(spade_tables, "MAX_WINDOW_SHARE", -1.0)  # the window tables always decline
        monkeypatch.setattr(spade_fast, "region_modulation", spy)
    plain, semantics = _generator_and_input({}, MANY)
    with torch.no_grad():
        expected = plain(semantics)
    fast = inference.prepare(copy.deepcopy(plain), torch.device("cpu"), precision)
    out = inference.run(fast, semantics, None, precision)
    assert any(maps is not None for maps in used)  # some layers took this path
    low = FP32_DB if precision == "fp32" else REDUCED_DB
    print(f"{precision} {path}: {inference.psnr(out, expected):.1f} dB")
    assert inference.psnr(out, expected) >= low


def test_prepare_puts_every_spade_block_on_the_fast_path_and_training_keeps_the_plain_one():
    plain = build_generator("spade", {"ngf": 8, "hidden": 8}, GeneratorContext(MANY, 64))
    fast = inference.prepare(copy.deepcopy(plain), torch.device("cpu"))
    blocks = [m for m in fast.modules() if isinstance(m, SPADE)]
    assert blocks and all(type(m) is spade_fast.FastSPADE for m in blocks)
    assert not any(type(m) is spade_fast.FastSPADE for m in plain.modules())


def test_psnr_and_precision_choice():
    a = torch.zeros(1, 3, 4, 4)
    assert inference.psnr(a, a) == float("inf")
    assert inference.psnr(a, a + 2 / 255) == pytest.approx(20 * torch.log10(torch.tensor(255.0)).item(), abs=1e-4)
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) in ("bf16", "fp32")
