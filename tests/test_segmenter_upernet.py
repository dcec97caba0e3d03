"""The `upernet` segmenter against an independent re-computation of CSAIL's UperNet-101 test procedure.

The weight files are written here with the published files' key names and shapes (listed from the reference
repository's layers, not from the plugin's modules), random values, and the stale SynchronizedBatchNorm buffers
of the published files; the reference forward is torch.nn.functional on that state dict, and the preprocessing
is TestDataset's (PIL bilinear resize, /255, ImageNet mean/std in numpy) and test.py's fusion.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spadekit.errors import SpadekitError
from spadekit.segmenter import build_segmenter

SMALL = {"img_sizes": (64, 96), "img_max_size": 120}  # small scales keep the full-size network fast on a CPU
ENCODER_PARAMS = 42_623_936  # resnet101 (deep stem, no fc) as the Resnet wrapper holds it
DECODER_PARAMS = 40_590_486  # UPerNet(num_class=150, fc_dim=2048, fpn_dim=512)


# ---- the published files' layout, from the reference's layer definitions -----------------------------------

def _conv(name, out_c, in_c, k):
    return [(f"{name}.weight", (out_c, in_c, k, k))]


def _bn(name, c):
    return [(f"{name}.{p}", (c,)) for p in ("weight", "bias", "running_mean", "running_var")]


def encoder_shapes():
    """Keys of `Resnet(resnet101)`: deep stem conv1..3/bn1..3, then layer1..4 of Bottlenecks [3, 4, 23, 3]."""
    shapes = _conv("conv1", 64, 3, 3) + _bn("bn1", 64) + _conv("conv2", 64, 64, 3) + _bn("bn2", 64)
    shapes += _conv("conv3", 128, 64, 3) + _bn("bn3", 128)
    inplanes = 128
    for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 23, 3), strict=True), start=1):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            shapes += _conv(f"{p}.conv1", planes, inplanes, 1) + _bn(f"{p}.bn1", planes)
            shapes += _conv(f"{p}.conv2", planes, planes, 3) + _bn(f"{p}.bn2", planes)
            shapes += _conv(f"{p}.conv3", planes * 4, planes, 1) + _bn(f"{p}.bn3", planes * 4)
            if b == 0:
                shapes += _conv(f"{p}.downsample.0", planes * 4, inplanes, 1) + _bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    return shapes


def decoder_shapes():
    """Keys of `UPerNet(fc_dim=2048, num_class=150, fpn_dim=512)`."""
    shapes = []
    for i in range(4):
        shapes += _conv(f"ppm_conv.{i}.0", 512, 2048, 1) + _bn(f"ppm_conv.{i}.1", 512)
    shapes += _conv("ppm_last_conv.0", 512, 2048 + 4 * 512, 3) + _bn("ppm_last_conv.1", 512)
    for i, c in enumerate((256, 512, 1024)):
        shapes += _conv(f"fpn_in.{i}.0", 512, c, 1) + _bn(f"fpn_in.{i}.1", 512)
    for i in range(3):
        shapes += _conv(f"fpn_out.{i}.0.0", 512, 512, 3) + _bn(f"fpn_out.{i}.0.1", 512)
    shapes += _conv("conv_last.0.0", 512, 4 * 512, 3) + _bn("conv_last.0.1", 512)
    return shapes + [("conv_last.1.weight", (150, 512, 1, 1)), ("conv_last.1.bias", (150,))]


def random_state(shapes, generator):
    """He-scaled convs, BN with random statistics, and the stale SyncBN buffers filled with garbage."""
    state = {}
    for key, shape in shapes:
        name = key.rsplit(".", 1)[1]
        if len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif name == "weight":  # BN gamma; small in a block's last BN so that 33 residual blocks stay tame
            low = 0.1 if key.startswith("layer") and ".bn3." in key else 0.6
            state[key] = low + torch.rand(shape, generator=generator) * 0.4
        elif name == "running_var":
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        else:  # bias, running_mean
            state[key] = torch.randn(shape, generator=generator) * 0.1
        if name == "running_var":
            prefix = key.rsplit(".", 1)[0]
            state[f"{prefix}._tmp_running_mean"] = torch.full(shape, 1e6)
            state[f"{prefix}._tmp_running_var"] = torch.full(shape, -5.0)
            state[f"{prefix}._running_iter"] = torch.full((1,), 7.0)
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upernet")
    generator = torch.Generator().manual_seed(0)
    encoder, decoder = random_state(encoder_shapes(), generator), random_state(decoder_shapes(), generator)
    decoder["conv_last.1.weight"] *= 8  # logits spread enough for a varied argmax
    torch.save(encoder, folder / "encoder_epoch_50.pth")
    torch.save(decoder, folder / "decoder_epoch_50.pth")
    return folder, encoder, decoder


@pytest.fixture(scope="module")
def segmenter(weights):
    return build_segmenter("upernet", weights[0], options=SMALL)


# ---- the reference forward, straight from the state dicts ----------------------------------------------------

def cbr(x, sd, conv, bn, stride=1, relu=True):
    weight = sd[f"{conv}.weight"]
    x = F.conv2d(x, weight, sd.get(f"{conv}.bias"), stride=stride, padding=weight.shape[-1] // 2)
    x = F.batch_norm(x, sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"], sd[f"{bn}.weight"], sd[f"{bn}.bias"],
                     False, 0.0, 1e-5)
    return F.relu(x) if relu else x


def reference_encoder(x, sd):
    x = cbr(cbr(cbr(x, sd, "conv1", "bn1", stride=2), sd, "conv2", "bn2"), sd, "conv3", "bn3")
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    conv_out = []
    for layer, (blocks, stride) in enumerate(zip((3, 4, 23, 3), (1, 2, 2, 2), strict=True), start=1):
        for b in range(blocks):
            p, s = f"layer{layer}.{b}", stride if b == 0 else 1
            out = cbr(cbr(x, sd, f"{p}.conv1", f"{p}.bn1"), sd, f"{p}.conv2", f"{p}.bn2", stride=s)
            out = cbr(out, sd, f"{p}.conv3", f"{p}.bn3", relu=False)
            residual = cbr(x, sd, f"{p}.downsample.0", f"{p}.downsample.1", stride=s, relu=False) if b == 0 else x
            x = F.relu(out + residual)
        conv_out.append(x)
    return conv_out


def bilinear(x, size):
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def reference_decoder(conv_out, sd):
    conv5 = conv_out[-1]
    ppm_out = [conv5]
    for i, scale in enumerate((1, 2, 3, 6)):
        pooled = bilinear(F.adaptive_avg_pool2d(conv5, scale), conv5.shape[2:])
        ppm_out.append(cbr(pooled, sd, f"ppm_conv.{i}.0", f"ppm_conv.{i}.1"))
    f = cbr(torch.cat(ppm_out, 1), sd, "ppm_last_conv.0", "ppm_last_conv.1")
    features = [f]
    for i in (2, 1, 0):
        lateral = cbr(conv_out[i], sd, f"fpn_in.{i}.0", f"fpn_in.{i}.1")
        f = lateral + bilinear(f, lateral.shape[2:])
        features.insert(0, cbr(f, sd, f"fpn_out.{i}.0.0", f"fpn_out.{i}.0.1"))
    fused = torch.cat([features[0]] + [bilinear(p, features[0].shape[2:]) for p in features[1:]], 1)
    x = cbr(fused, sd, "conv_last.0.0", "conv_last.0.1")
    return F.conv2d(x, sd["conv_last.1.weight"], sd["conv_last.1.bias"])


def reference_inputs(photo, img_sizes, img_max_size, padding_constant=32):
    """TestDataset.__getitem__ for one uint8 H x W x 3 photo: one normalized 1 x 3 x h x w tensor per scale."""
    ori_height, ori_width = photo.shape[:2]
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    inputs = []
    for short in img_sizes:
        scale = min(short / float(min(ori_height, ori_width)), img_max_size / float(max(ori_height, ori_width)))
        height, width = int(ori_height * scale), int(ori_width * scale)
        height = ((height - 1) // padding_constant + 1) * padding_constant
        width = ((width - 1) // padding_constant + 1) * padding_constant
        img = np.float32(np.array(Image.fromarray(photo).resize((width, height), Image.BILINEAR))) / 255.0
        inputs.append(torch.from_numpy(((img - mean) / std).transpose(2, 0, 1).copy())[None])
    return inputs


def reference_logits(photo, encoder_sd, decoder_sd):
    """The network's logits at each test scale of one photo."""
    with torch.no_grad():
        return [reference_decoder(reference_encoder(img, encoder_sd), decoder_sd)
                for img in reference_inputs(photo, SMALL["img_sizes"], SMALL["img_max_size"])]


def reference_predict(logits, seg_size):
    """test.py: scores += softmax(logits upsampled to segSize) / len(imgSizes); argmax."""
    scores = torch.zeros(1, 150, *seg_size)
    for x in logits:
        scores = scores + F.softmax(bilinear(x, seg_size), dim=1) / len(logits)
    return scores.argmax(1)[0]


def photos(seed, height, width, count):
    """uint8 photos with smooth structure (random noise, blurred) and the [0, 1] tensor the segmenter gets."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(count, max(2, height // 6), max(2, width // 6), 3), dtype=np.uint8)
    uint8 = np.stack([np.array(Image.fromarray(s).resize((width, height), Image.BICUBIC)) for s in small])
    return uint8, torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 255


# ---- tests ---------------------------------------------------------------------------------------------------

def test_predictions_equal_the_reference_procedure(segmenter, weights):
    _, encoder_sd, decoder_sd = weights
    cases = [(48, 80, 2, [None]), (50, 37, 1, [None, (30, 45)])]  # a batch; a portrait photo, at a given size too
    for seed, (height, width, count, sizes) in enumerate(cases):
        uint8, images = photos(seed, height, width, count)
        logits = [reference_logits(photo, encoder_sd, decoder_sd) for photo in uint8]
        for size in sizes:
            predicted = segmenter.predict(images, size=size)
            seg_size = size or (height, width)
            assert predicted.dtype == torch.int64 and tuple(predicted.shape) == (count, *seg_size)
            for i in range(count):
                assert torch.equal(predicted[i], reference_predict(logits[i], seg_size)), f"{height}x{width} {size}"
            assert len(predicted.unique()) > 3  # the random weights are not degenerate


def test_default_scales_follow_the_config(segmenter):
    from spadekit_plugins.upernet.segmenter import scale_sizes
    from spadekit_plugins.upernet.spec import UperNetOptions

    defaults = UperNetOptions()
    assert (defaults.img_sizes, defaults.img_max_size, defaults.padding_constant) == ((300, 375, 450, 525, 600),
                                                                                      1000, 32)
    args = (defaults.img_sizes, defaults.img_max_size, defaults.padding_constant)
    assert scale_sizes(256, 256, *args) == [(320, 320), (384, 384), (480, 480), (544, 544), (608, 608)]
    assert scale_sizes(375, 500, *args) == [(320, 416), (384, 512), (480, 608), (544, 704), (608, 800)]
    assert scale_sizes(200, 1000, *args) == [(224, 1024)] * 5  # long side capped at 1000, then rounded up
    for height, width in [(256, 256), (375, 500), (200, 1000), (50, 37), (683, 512)]:
        photo = np.zeros((height, width, 3), np.uint8)
        expected = [tuple(x.shape[2:]) for x in reference_inputs(photo, *args)]
        assert scale_sizes(height, width, *args) == expected
    assert segmenter.file_id_offset == 1 and len(segmenter.facts.class_names) == 150
    assert "300/375" not in segmenter.procedure and "64/96" in segmenter.procedure


def test_parameter_counts_match_the_reference_layers(segmenter):
    encoder = sum(p.numel() for p in segmenter.encoder.parameters())
    decoder = sum(p.numel() for p in segmenter.decoder.parameters())
    print(f"UperNet-101 parameters: encoder {encoder:,}, decoder {decoder:,}, total {encoder + decoder:,}")
    for shapes, count in ((encoder_shapes(), encoder), (decoder_shapes(), decoder)):
        learned = [s for k, s in shapes if not k.endswith(("running_mean", "running_var"))]
        assert count == sum(int(np.prod(s)) for s in learned)
    assert (encoder, decoder) == (ENCODER_PARAMS, DECODER_PARAMS)


def test_missing_files_name_the_file_and_url(tmp_path, weights):
    with pytest.raises(SpadekitError, match=r"encoder_epoch_50\.pth.*sceneparsing\.csail\.mit\.edu"):
        build_segmenter("upernet", tmp_path)
    (tmp_path / "encoder_epoch_50.pth").symlink_to(weights[0] / "encoder_epoch_50.pth")
    with pytest.raises(SpadekitError, match=r"decoder_epoch_50\.pth.*ade20k-resnet101-upernet"):
        build_segmenter("upernet", tmp_path)


def test_misshaped_key_is_named(tmp_path, weights):
    folder, _, decoder = weights
    (tmp_path / "encoder_epoch_50.pth").symlink_to(folder / "encoder_epoch_50.pth")
    torch.save({**decoder, "conv_last.1.bias": torch.zeros(151)}, tmp_path / "decoder_epoch_50.pth")
    with pytest.raises(SpadekitError, match=r"conv_last\.1\.bias \(151,\)"):
        build_segmenter("upernet", tmp_path)


def test_cannot_be_trained():
    from spadekit_plugins.upernet.spec import UperNetOptions, build

    with pytest.raises(SpadekitError, match="cannot be trained"):
        build(UperNetOptions(), facts=object())


def test_predict_command_writes_ade20k_annotation_ids(segmenter, weights, tmp_path, cli):
    """`spadekit segmenter predict` writes class + 1: the ids 1..150 of ADE20K's annotation PNGs."""
    uint8, images = photos(7, 40, 56, 1)
    Image.fromarray(uint8[0]).save(tmp_path / "room.png")
    cli("segmenter", "predict", str(tmp_path / "room.png"), "--segmenter", "upernet", "--checkpoint",
        str(weights[0]), "--out", str(tmp_path / "out"), "--set", "img_sizes=[64, 96]", "--set",
        "img_max_size=120")
    written = np.asarray(Image.open(tmp_path / "out" / "room.png"))
    assert written.shape == (40, 56) and written.min() >= 1
    assert np.array_equal(written, segmenter.predict(images)[0].numpy() + 1)
