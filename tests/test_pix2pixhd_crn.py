"""The pix2pixHD++ and CRN generator plugins, SPADE's "decoder w/ Concat", Table 3's parameter counts, and
regression-only training (a plugin's default losses, no discriminator step)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from spadekit.config import load_recipe
from spadekit.errors import SpadekitError
from spadekit.generator import PAPER_CONTEXTS, GeneratorContext, build_generator, build_on_meta, parameter_count
from spadekit.nn.layers import OFFICIAL_SPECTRAL_KEYS
from spadekit.nn.semantics import LabelSpace
from spadekit.nn.spade import SPADE
from spadekit.nn.vgg import VGG19Features, VGGLoss
from spadekit.train.loop import TrainJob, train
from spadekit.train.objective import GeneratorStep, PaperObjective
from tests.conftest import REPO

TINY = LabelSpace(5, dontcare=False, use_instance=True)  # 6 input channels
SMALL_P2P = {"ngf": 4, "spade_hidden": 8}
SMALL_CRN = {"widths": [8, 8, 8, 4, 4]}  # 4, 8, 16, 32 and 64 px high


def _semantics(batch=2, size=64, classes=(1, 3)):
    semantics = torch.zeros(batch, TINY.semantic_nc, size, size)
    semantics[:, classes[0], : size // 2], semantics[:, classes[1], size // 2 :] = 1, 1
    return semantics


@pytest.mark.parametrize(
    ("name", "options", "table3"),
    [
        ("spade", {}, 96e6),
        ("spade", {"ngf": 48}, 61e6),  # compact decoder w/ SPADE
        ("spade", {"concat": True}, 79e6),  # decoder w/ Concat
        ("pix2pixhd", {"spade": "all"}, 237e6),  # pix2pixHD++ w/ SPADE
        ("pix2pixhd", {"concat": True}, 195e6),  # pix2pixHD++ w/ Concat
        ("pix2pixhd", {}, 183e6),  # pix2pixHD++
        ("pix2pixhd", {"ngf": 48}, 103e6),  # compact pix2pixHD++
    ],
)
def test_parameter_counts_agree_with_table_3(name, options, table3):
    """Table 3 counts are ADE20K's (SPADE: 96.49M there, 97.48M at COCO-Stuff); all agree within 1%."""
    assert parameter_count(name, options, PAPER_CONTEXTS["ade20k"]) == pytest.approx(table3, rel=0.01)


def test_plain_pix2pixhd_has_the_official_count_and_keys():
    coco = PAPER_CONTEXTS["coco-stuff"]
    assert parameter_count("pix2pixhd", {"norm": "spectralinstance"}, coco) == 182_989_507  # official, COCO
    generator = build_generator("pix2pixhd", {"ngf": 4, "norm": "spectralinstance"}, GeneratorContext(TINY, 64))
    official_names = {new: old for old, new in OFFICIAL_SPECTRAL_KEYS.items()}
    keys = set()
    for key in generator.state_dict():
        for new, old in official_names.items():
            key = key.replace(new, old)
        keys.add(key)
    spectral = ("weight_orig", "weight_u", "weight_v")
    expected = {f"model.{i}.0.{s}" for i in (1, 3, 5, 7, 9, 20, 22, 24, 26) for s in spectral}
    expected |= {f"model.{i}.conv_block.{j}.0.{s}" for i in range(11, 20) for j in (1, 4) for s in spectral}
    expected |= {"model.29.weight", "model.29.bias"}
    assert keys == expected


@pytest.mark.parametrize(
    "options", [{}, {"concat": True}, {"spade": "decoder"}, {"spade": "all", "norm": "spectralinstance"}]
)
def test_pix2pixhd_variants_make_images_of_the_crop_size(options):
    generator = build_generator("pix2pixhd", {**SMALL_P2P, **options}, GeneratorContext(TINY, 64, aspect_ratio=2.0))
    assert generator.encoder is None and generator.z_dim is None
    out = generator(_semantics(size=64)[..., :32, :])
    assert out.shape == (2, 3, 32, 64) and out.abs().max() <= 1
    spades = [m for m in generator.modules() if isinstance(m, SPADE)]
    assert len(spades) == {"decoder": 9 * 2 + 4, "all": 1 + 4 + 9 * 2 + 4}.get(options.get("spade"), 0)


def test_pix2pixhd_refuses_sizes_and_norms_it_cannot_use():
    with pytest.raises(SpadekitError, match="multiples of 16.*model.n_downsample"):
        build_generator("pix2pixhd", SMALL_P2P, GeneratorContext(TINY, 72))
    with pytest.raises(SpadekitError, match="model.spade = 'all' needs a parameter-free norm"):
        build_generator("pix2pixhd", {**SMALL_P2P, "spade": "all", "norm": "spectralnone"}, GeneratorContext(TINY, 64))


def _uniform(label: int) -> torch.Tensor:
    semantics = torch.zeros(1, TINY.semantic_nc, 64, 64)
    semantics[:, label] = 1
    return semantics


def _exact_instance_norm(self, x):
    """Instance norm as in exact arithmetic: a constant channel becomes exactly 0. torch leaves a rounding
    residue there (about 1e-6 in float32) that every later instance norm rescales by up to 1/sqrt(eps)."""
    constant = (x == x[..., :1, :1]).flatten(2).all(-1)[..., None, None]
    return torch.where(constant, torch.zeros_like(x), nn.functional.instance_norm(x, eps=self.eps))


def test_normalizing_the_label_map_washes_it_out_and_spade_does_not(monkeypatch):
    """Paper Section 3, "Why does SPADE work better?": uniform label maps of two classes at initialization."""
    torch.manual_seed(0)
    instance = {"norm": "spectralinstance"}
    pix2pixhd = build_generator("pix2pixhd", {**SMALL_P2P, **instance}, GeneratorContext(TINY, 64)).eval()
    with torch.no_grad():  # the first layer (pad, conv, instance norm, ReLU) leaves nothing of the label
        assert all(pix2pixhd.model[:3](_uniform(label)).abs().max() < 1e-4 for label in range(TINY.semantic_nc))
    monkeypatch.setattr(nn.InstanceNorm2d, "forward", _exact_instance_norm)
    same = {
        "pix2pixHD++": pix2pixhd,
        "pix2pixHD++ w/ Concat": build_generator(
            "pix2pixhd", {**SMALL_P2P, **instance, "concat": True}, GeneratorContext(TINY, 64)
        ),
    }
    different = {
        "pix2pixHD++ w/ SPADE": build_generator(
            "pix2pixhd", {**SMALL_P2P, **instance, "spade": "all"}, GeneratorContext(TINY, 64)
        ),
        "SPADE": build_generator("spade", {"ngf": 4, "hidden": 8, "norm": "instance"}, GeneratorContext(TINY, 64)),
    }
    with torch.no_grad():
        for name, generator in same.items():
            assert torch.equal(generator.eval()(_uniform(0)), generator(_uniform(2))), name
        for name, generator in different.items():
            sky, grass = generator.eval()(_uniform(0)), generator(_uniform(2))
            assert (sky - grass).abs().max() > 1e-3 * sky.abs().max(), name


def test_spade_decoder_with_concat_has_no_spade_and_sees_the_label_map():
    generator = build_generator("spade", {"ngf": 4, "concat": True}, GeneratorContext(TINY, 64))
    assert not any(isinstance(m, SPADE) for m in generator.modules())
    assert generator.up_0.conv_0.in_channels == 16 * 4 + TINY.semantic_nc
    out = generator(_semantics())
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1


def test_crn_cascade_doubles_from_the_start_size():
    generator = build_generator("crn", {"start_size": 4, "widths": [8, 8, 4]}, GeneratorContext(TINY, 32, 2.0))
    assert generator.sizes == [(4, 8), (8, 16), (16, 32)]
    assert generator.cascade[1][0].in_channels == TINY.semantic_nc + 8  # label map + upsampled features
    assert generator(_semantics(size=32)[..., :16, :]).shape == (2, 3, 16, 32)
    coco = build_on_meta("crn", {}, GeneratorContext(TINY, 256))
    assert [m[0].out_channels for m in coco.cascade] == [1024] * 5 + [512] * 2  # Chen & Koltun's widths


def test_crn_refuses_widths_and_sizes_that_do_not_fit():
    with pytest.raises(SpadekitError, match="model.widths has 2 entries but this cascade has 5 modules"):
        build_generator("crn", {"widths": [8, 8]}, GeneratorContext(TINY, 64))
    with pytest.raises(SpadekitError, match="model.start_size = 4"):
        build_generator("crn", SMALL_CRN, GeneratorContext(TINY, 48))


def test_a_plugin_declares_its_default_losses_and_the_recipe_overrides_them(tmp_path, monkeypatch):
    crn = load_recipe(None, {"model.name": "crn"}).loss
    assert (crn.lambda_gan, crn.lambda_feat, crn.lambda_vgg) == (0, 0, 10)
    spade = load_recipe(None, {"model.name": "spade"}).loss
    assert (spade.lambda_gan, spade.lambda_feat) == (1, 10)
    recipe = tmp_path / "crn_gan.toml"
    recipe.write_text('[model]\nname = "crn"\n[loss]\nlambda_gan = 1.0\nlambda_feat = 10.0\n')
    assert load_recipe(recipe).loss.lambda_feat == 10
    monkeypatch.setenv("SPADEKIT_LOSS__LAMBDA_VGG", "0")
    assert load_recipe(recipe, {"loss.lambda_l1": 1.0}).loss.lambda_l1 == 1
    with pytest.raises(SpadekitError, match="loss.lambda_feat = 10.0 matches features.*lambda_gan = 0"):
        load_recipe(None, {"model.name": "crn", "loss.lambda_feat": 10.0})
    with pytest.raises(SpadekitError, match="losses are all off"):
        load_recipe(None, {"model.name": "crn"})  # the environment turned VGG off


def _must_not_run(*args, **kwargs):
    raise AssertionError("the discriminator must not run when loss.lambda_gan = 0")


class _NoDiscriminator(nn.Module):
    forward = _must_not_run


def test_regression_objective_runs_no_discriminator():
    generator = build_generator("crn", SMALL_CRN, GeneratorContext(TINY, 64))
    loss = load_recipe(None, {"model.name": "crn", "loss.lambda_l1": 1.0}).loss
    objective = PaperObjective(GeneratorStep(generator), _NoDiscriminator(), loss, VGGLoss(features=VGG19Features()))
    losses, fake = objective.generator_losses(_semantics(), torch.rand(2, 3, 64, 64) * 2 - 1)
    assert not objective.trains_discriminator and set(losses) == {"G_VGG", "G_L1"}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in generator.parameters())


def test_trainer_skips_the_discriminator_step_for_crn(tmp_path, toy_shards, monkeypatch):
    monkeypatch.setattr(PaperObjective, "discriminator_losses", _must_not_run)
    recipe = load_recipe(
        None,
        {
            "data.shards": str(toy_shards),
            "data.load_size": 72,
            "data.crop_size": 64,
            "data.batch_size": 4,
            "data.num_workers": 0,
            "model.name": "crn",
            "model.widths": SMALL_CRN["widths"],
            "loss.lambda_vgg": 0.0,
            "loss.lambda_l1": 1.0,
            "train.max_steps": 2,
            "train.log_every": 1,
        },
    )
    train(TrainJob(recipe, tmp_path / "run"))
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2] and "G_L1" in lines[0] and "D_fake" not in lines[0]


def test_dry_run_reports_the_generator_size_and_no_discriminator(toy_shards, cli):
    recipe = REPO / "recipes" / "toyscapes_crn.toml"
    result = cli("train", str(recipe), "--dry-run", "--set", f"data.shards={toy_shards}")
    assert "generator crn 2.42M parameters" in result.stdout
    assert "discriminator not trained (loss.lambda_gan = 0)" in result.stdout
