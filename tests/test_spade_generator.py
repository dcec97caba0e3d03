"""The SPADE generator plugin and the shared blocks it is made of (paper Figure 12, official architecture)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spadekit.errors import SpadekitError
from spadekit.generator import GeneratorContext, build_generator, count_parameters
from spadekit.nn.discriminator import MultiscaleDiscriminator
from spadekit.nn.encoder import ConvEncoder
from spadekit.nn.layers import fold_spectral_norm
from spadekit.nn.norms import SyncableBatchNorm2d, convert_sync_batchnorm
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.nn.spade import SPADE, resize_segmap

COCO = LabelSpace(182, dontcare=True, use_instance=True)  # 184 input channels
ADE = LabelSpace(150, dontcare=True, use_instance=False)  # 151
CITYSCAPES = LabelSpace(35, dontcare=False, use_instance=True)  # 36
TINY = LabelSpace(5, dontcare=False, use_instance=True)


def _generator(space, crop=64, aspect=1.0, **options):
    return build_generator("spade", {"ngf": 4, "hidden": 8, **options}, GeneratorContext(space, crop, aspect))


@pytest.mark.parametrize(
    ("space", "crop", "aspect", "options", "expected"),
    [
        (COCO, 256, 1.0, {}, 97_480_899),  # the official code's own count (its log: "97.5 million")
        (CITYSCAPES, 512, 2.0, {"num_upsampling_layers": "more"}, 93_048_003),
        (ADE, 256, 1.0, {"ngf": 48}, 60_642_771),  # paper Tables 3-4: the compact generator, "61M"
        (ADE, 256, 1.0, {"ngf": 80}, 140_682_163),  # paper Table 4: "141M"
    ],
)
def test_parameter_counts_match_the_paper_configurations(space, crop, aspect, options, expected):
    with torch.device("meta"):
        generator = build_generator("spade", options, GeneratorContext(space, crop, aspect))
    assert count_parameters(generator) == expected


def test_output_size_follows_crop_aspect_and_upsampling_layers():
    for layers, crop in (("normal", 64), ("more", 128), ("most", 256)):
        generator = _generator(TINY, crop=crop, aspect=2.0, num_upsampling_layers=layers)
        semantics = torch.zeros(2, TINY.semantic_nc, crop // 2, crop)
        semantics[:, 0] = 1
        out = generator(semantics)
        assert out.shape == (2, 3, crop // 2, crop) and out.abs().max() <= 1


def test_a_size_that_does_not_divide_by_the_upsamplings_is_refused():
    with pytest.raises(SpadekitError, match="multiples of 32; change data.crop_size"):
        _generator(TINY, crop=100)


def test_vae_generator_samples_the_prior_on_cpu_and_encodes_any_image_size():
    generator = _generator(TINY, use_vae=True, z_dim=7)
    assert generator.z_dim == 7 and generator.options.input == "noise"
    semantics = torch.zeros(1, TINY.semantic_nc, 64, 64)
    semantics[:, 2] = 1
    assert generator(semantics).shape == (1, 3, 64, 64)  # z from the prior (the official code fails on CPU)
    mu, logvar = generator.encoder(torch.rand(3, 3, 37, 101) * 2 - 1)  # any size and aspect
    assert mu.shape == logvar.shape == (3, 7)


@pytest.mark.parametrize("z_dim", [8, 300])
def test_encoder_works_at_any_z_size(z_dim):
    mu, _ = ConvEncoder(ndf=4, z_dim=z_dim)(torch.zeros(1, 3, 128, 128))
    assert mu.shape == (1, z_dim)


def test_spade_modulates_where_instance_norm_of_a_uniform_map_would_wash_it_out():
    """Paper Section 3, "Why does SPADE work better?": two uniform label maps of different classes."""
    torch.manual_seed(0)
    spade = SPADE(norm_nc=4, label_nc=3, norm="instance").eval()
    x = torch.randn(1, 4, 8, 8)
    sky, grass = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    sky[:, 0], grass[:, 1] = 1, 1
    assert not torch.allclose(spade(x, sky), spade(x, grass))
    # pix2pixHD's input layer (reflection padding, conv, instance norm) maps both to the same zeros
    conv_then_norm = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4))
    assert torch.allclose(conv_then_norm(sky), conv_then_norm(grass), atol=1e-5)


def test_discriminator_returns_every_layer_at_the_official_sizes():
    outputs = MultiscaleDiscriminator(input_nc=4, num_D=2, ndf=4, n_layers=4)(torch.zeros(1, 4, 256, 256))
    sizes = [[o.shape[-1] for o in scale] for scale in outputs]
    assert sizes == [[129, 65, 33, 34, 35], [65, 33, 17, 18, 19]]
    assert outputs[0][-1].shape[1] == 1


def test_folding_spectral_norm_keeps_the_eval_output():
    generator = _generator(TINY)
    generator.train()
    semantics = torch.zeros(2, TINY.semantic_nc, 64, 64)
    semantics[:, 1, :32], semantics[:, 3, 32:] = 1, 1
    generator(semantics)  # a training step's power iteration and batch statistics
    generator.eval()
    with torch.no_grad():
        before = generator(semantics)
        after = fold_spectral_norm(generator)(semantics)
    assert torch.allclose(before, after, atol=1e-6)
    assert not any("parametrizations" in key for key in generator.state_dict())


def test_only_sync_batch_norms_become_syncbatchnorm():
    generator = _generator(TINY, norm="sync_batch")
    assert any(isinstance(m, SyncableBatchNorm2d) for m in generator.modules())
    converted = convert_sync_batchnorm(generator)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in converted.modules())
    plain = convert_sync_batchnorm(_generator(TINY, norm="batch"))
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in plain.modules())


def test_semantics_put_dontcare_after_the_classes_and_edges_last():
    space = LabelSpace(3, dontcare=True, use_instance=True)
    label = torch.tensor([[[[0, 3], [2, 1]]]])
    edge = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    semantics = to_semantics(label, edge, space)
    assert semantics.shape == (1, 5, 2, 2)
    assert semantics[0, :4].argmax(0).tolist() == [[0, 3], [2, 1]]
    assert semantics[0, 4].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_unknown_generator_option_names_the_key():
    with pytest.raises(SpadekitError, match="ngf"):
        build_generator("spade", {"ngff": 3}, GeneratorContext(TINY, 64))


@pytest.mark.parametrize(("size", "out"), [((64, 128), (8, 16)), ((64, 64), (32, 32)), ((60, 90), (8, 16))])
def test_segmap_resize_equals_nearest_interpolation(size, out):
    segmap = torch.rand(2, 3, *size)
    expected = nn.functional.interpolate(segmap, size=out, mode="nearest")
    assert torch.equal(resize_segmap(segmap, out), expected)
