"""SPADE losses: GAN modes, feature matching, KLD, reparameterisation and the VGG19 perceptual loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from spadekit.errors import SpadekitError
from spadekit.nn.losses import feature_matching_loss, gan_loss, kld_loss, reparameterize
from spadekit.nn.vgg import VGG19Features, VGGLoss, default_vgg19_path, load_vgg19

GARBAGE = torch.full((1, 2, 3, 3), 1e6)  # intermediate features that must not enter the GAN loss


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


# --- GAN loss -------------------------------------------------------------------------------------------


def test_hinge_discriminator_real_side_is_mean_of_relu_one_minus_x():
    # max(0, 1 - 2) = 0 and max(0, 1 - 0.5) = 0.5, so the mean is 0.25
    assert gan_loss(t(2.0, 0.5), True, True).item() == pytest.approx(0.25)


def test_hinge_discriminator_fake_side_is_mean_of_relu_one_plus_x():
    # max(0, 1 + -2) = 0 and max(0, 1 + 0.5) = 1.5, so the mean is 0.75
    assert gan_loss(t(-2.0, 0.5), False, True).item() == pytest.approx(0.75)


def test_hinge_generator_loss_is_negative_mean():
    assert gan_loss(t(2.0, -0.5, 1.5), True, False).item() == pytest.approx(-1.0)


def test_generator_loss_refuses_a_fake_target():
    with pytest.raises(ValueError):
        gan_loss(t(1.0), False, False)


def test_multiscale_loss_averages_last_outputs_and_ignores_intermediates():
    outputs = [[GARBAGE, GARBAGE, t(2.0, 0.5)], [GARBAGE, t(0.0, 0.0)]]  # scale losses 0.25 and 1.0
    assert gan_loss(outputs, True, True).item() == pytest.approx((0.25 + 1.0) / 2)
    assert gan_loss(outputs, True, False).item() == pytest.approx((-1.25 + 0.0) / 2)


@pytest.mark.parametrize("real", [True, False])
def test_least_squares_mode_is_mse_against_one_or_zero(real):
    pred = torch.randn(2, 1, 4, 4)
    expected = F.mse_loss(pred, torch.full_like(pred, float(real)))
    assert torch.allclose(gan_loss([[GARBAGE, pred]], real, True, mode="ls"), expected)


@pytest.mark.parametrize("real", [True, False])
def test_original_mode_is_bce_with_logits_against_one_or_zero(real):
    pred = torch.randn(2, 1, 4, 4)
    expected = F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, float(real)))
    assert torch.allclose(gan_loss([[GARBAGE, pred]], real, True, mode="original"), expected)


def test_generator_in_ls_and_original_modes_targets_real():
    pred = torch.randn(3, 1, 2, 2)
    ones = torch.ones_like(pred)
    assert torch.allclose(gan_loss(pred, True, for_discriminator=False, mode="ls"), F.mse_loss(pred, ones))
    expected = F.binary_cross_entropy_with_logits(pred, ones)
    assert torch.allclose(gan_loss(pred, True, for_discriminator=False, mode="original"), expected)


def test_unknown_gan_mode_is_a_user_error_listing_the_modes():
    with pytest.raises(SpadekitError, match="'hinge'"):
        gan_loss(torch.zeros(1), True, True, mode="wgan")


def test_losses_are_float32_for_bf16_inputs_under_autocast():
    pred = torch.randn(2, 1, 4, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gan_loss(pred, True, True, mode="ls").dtype == torch.float32
        assert feature_matching_loss([[pred, pred]], [[pred, pred]]).dtype == torch.float32
        assert kld_loss(pred, pred).dtype == torch.float32


# --- feature matching -------------------------------------------------------------------------------------


def test_feature_matching_is_zero_for_identical_outputs():
    outs = [[torch.randn(1, 2, 4, 4), torch.randn(1, 1, 4, 4)] for _ in range(2)]
    assert feature_matching_loss(outs, outs).item() == 0.0


def test_feature_matching_weights_each_layer_by_lambda_over_num_d_and_skips_predictions():
    fake = [[t(1.0, 1.0), t(0.0), t(100.0)], [t(2.0), t(-50.0)]]
    real = [[t(0.0, 0.0), t(3.0), t(-100.0)], [t(0.0), t(50.0)]]
    # L1 per intermediate layer: 1, 3 (scale 0) and 2 (scale 1); predictions (last) are skipped
    assert feature_matching_loss(fake, real, lambda_feat=10.0).item() == pytest.approx(10.0 / 2 * (1 + 3 + 2))


def test_feature_matching_sends_no_gradient_to_the_real_side():
    fake_feat = torch.randn(1, 2, 3, 3, requires_grad=True)
    real_feat = torch.randn(1, 2, 3, 3, requires_grad=True)
    loss = feature_matching_loss([[fake_feat, t(0.0)]], [[real_feat, t(0.0)]])
    loss.backward()
    assert fake_feat.grad is not None and fake_feat.grad.abs().sum() > 0
    assert real_feat.grad is None


# --- KLD and reparameterisation ----------------------------------------------------------------------------


def test_kld_equals_summed_closed_form_kl_to_standard_normal():
    mu, logvar = torch.randn(3, 8), torch.randn(3, 8)
    posterior = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(posterior, prior).sum()
    assert torch.allclose(kld_loss(mu, logvar), expected, atol=1e-5)


def test_kld_is_zero_for_the_prior_itself():
    assert kld_loss(torch.zeros(2, 4), torch.zeros(2, 4)).item() == 0.0


def test_reparameterize_is_mu_plus_scaled_noise_and_reproducible_with_a_generator():
    mu, logvar = torch.randn(4, 5), torch.randn(4, 5)
    z = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(4, 5, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(z, mu + eps * torch.exp(0.5 * logvar))


# --- VGG perceptual loss ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torchvision_vgg():
    torch.manual_seed(0)
    return torchvision.models.vgg19(weights=None).eval()


@pytest.fixture(scope="module")
def vgg_file(torchvision_vgg, tmp_path_factory):
    """A torchvision-style VGG19 state_dict; the 400 MB classifier is shrunk to a stand-in key to stay fast."""
    state = {k: v for k, v in torchvision_vgg.state_dict().items() if k.startswith("features.")}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # extra keys must be ignored
    path = tmp_path_factory.mktemp("vgg") / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def vgg(vgg_file):
    return load_vgg19(vgg_file)


def test_loaded_features_match_torchvision_slices(vgg, torchvision_vgg):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ours = vgg(x)
        ref, h = [], x
        for start, end in [(0, 2), (2, 7), (7, 12), (12, 21), (21, 30)]:
            h = torchvision_vgg.features[start:end](h)
            ref.append(h)
    assert len(ours) == 5
    for a, b in zip(ours, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_vgg_features_are_frozen_and_stay_in_eval_mode(vgg):
    assert all(not p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training


def test_vgg_loss_is_zero_for_identical_images_and_positive_otherwise(vgg):
    loss = VGGLoss(vgg)
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(img, img.clone()).item() == 0.0
    other = loss(img, torch.rand(1, 3, 32, 32) * 2 - 1)
    assert other.item() > 0 and other.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert loss(img, -img).dtype == torch.float32


def test_vgg_loss_weights_layers_one_thirtysecond_to_one(vgg):
    fake, real = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        l1 = [F.l1_loss(f, r) for f, r in zip(vgg(fake), vgg(real), strict=True)]
    expected = l1[0] / 32 + l1[1] / 16 + l1[2] / 8 + l1[3] / 4 + l1[4]
    assert torch.allclose(VGGLoss(vgg)(fake, real), expected, rtol=1e-5)


def test_vgg_loss_sends_gradient_to_the_fake_only(vgg):
    fake = torch.rand(1, 3, 32, 32, requires_grad=True)
    real = torch.rand(1, 3, 32, 32, requires_grad=True)
    VGGLoss(vgg)(fake, real).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert real.grad is None


def test_missing_weights_file_error_names_path_and_the_way_to_turn_vgg_off(tmp_path):
    missing = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(SpadekitError) as err:
        load_vgg19(missing)
    assert str(missing) in str(err.value) and "lambda_vgg" in str(err.value)


def test_missing_default_weights_error_names_hub_path_url_and_alternatives(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(SpadekitError) as err:
        load_vgg19()
    msg = str(err.value)
    expected = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert str(expected) in msg
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg
    assert "loss.vgg_weights" in msg and "lambda_vgg" in msg


def test_weights_are_found_in_the_torch_hub_cache(monkeypatch, tmp_path, vgg_file, vgg):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    expected = tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert default_vgg19_path() == expected
    expected.parent.mkdir(parents=True)
    expected.symlink_to(vgg_file)
    found = load_vgg19()
    assert torch.equal(found.features[0].weight, vgg.features[0].weight)


def test_corrupt_weights_file_is_a_user_error_naming_the_file(tmp_path):
    bad = tmp_path / "vgg19.pth"
    bad.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(SpadekitError, match="vgg19.pth"):
        load_vgg19(bad)


def test_state_dict_of_another_network_is_rejected_naming_the_file(tmp_path):
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, other)
    with pytest.raises(SpadekitError, match="resnet.pth.*features.0.weight"):
        load_vgg19(other)


def test_wrong_layer_shape_is_rejected_naming_the_key(tmp_path, vgg_file):
    state = torch.load(vgg_file, weights_only=True)
    state["features.28.weight"] = torch.zeros(3, 3)
    bad = tmp_path / "shapes.pth"
    torch.save(state, bad)
    with pytest.raises(SpadekitError, match="features.28.weight"):
        load_vgg19(bad)


def test_random_features_without_loading_have_the_torchvision_layout():
    keys = set(VGG19Features().state_dict())
    assert {"features.0.weight", "features.28.bias"} <= keys and len(keys) == 26  # 13 convs
