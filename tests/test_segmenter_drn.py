"""The `drn` segmenter plugin (fyu/drn's DRN-D-105 on Cityscapes) against an independent reference.

The checkpoint written here has the published file's key names and shapes, derived in this file from
fyu/drn's drn.py / segment.py (not from the plugin's module), random weights, BN running statistics, the
bilinear `up` kernel that segment.fill_up_weights computes, and no num_batches_tracked (the published file
predates it). The reference forward is functional, straight from the state dict; its preprocessing is numpy/PIL.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spadekit.errors import SpadekitError
from spadekit.segmenter import build_segmenter

MEAN = np.array([0.29010095242892997, 0.32808144844279574, 0.28696394422942517], dtype=np.float32)
STD = np.array([0.1829540508368939, 0.18656561047509476, 0.18447508988480435], dtype=np.float32)
BOTTLENECK_STAGES = ((3, 64, 3, 2, 1), (4, 128, 4, 2, 1), (5, 256, 23, 1, 2), (6, 512, 3, 1, 4))  # i, planes, n, s, d
CONV_STAGES = {1: (16, 16, 1, 1), 2: (16, 32, 2, 1), 7: (2048, 512, 1, 2), 8: (512, 512, 1, 1)}  # in, out, s, d
FILE = "drn-d-105_ms_cityscapes.pth"


def reference_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of DRNSeg('drn_d_105', 19).state_dict() as torch 0.2 wrote it (no num_batches_tracked)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)

    shapes["base.0.0.weight"] = (16, 3, 7, 7)
    bn("base.0.1", 16)
    for i, (cin, cout, _, _) in CONV_STAGES.items():
        shapes[f"base.{i}.0.weight"] = (cout, cin, 3, 3)
        bn(f"base.{i}.1", cout)
    inplanes = 32
    for i, planes, n, _, _ in BOTTLENECK_STAGES:
        for j in range(n):
            p = f"base.{i}.{j}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if j == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    shapes["seg.weight"], shapes["seg.bias"], shapes["up.weight"] = (19, 512, 1, 1), (19,), (19, 1, 16, 16)
    return shapes


def bilinear_up_kernel() -> torch.Tensor:
    """segment.fill_up_weights for a 16x16 kernel, the same for each of the 19 groups."""
    f = math.ceil(16 / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    k = torch.tensor([[(1 - abs(i / f - c)) * (1 - abs(j / f - c)) for j in range(16)] for i in range(16)])
    return k.expand(19, 1, 16, 16).clone()


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights scaled so that the 19 scores differ visibly after 105 layers."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference_shapes().items():
        if key == "up.weight":
            value = bilinear_up_kernel()
        elif key.endswith("running_var"):
            value = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(("running_mean", "bias")):
            value = torch.randn(shape, generator=g) * 0.1
        elif ".bn3." in key:  # gamma of a residual branch's last BN: small, to keep the 33 sums bounded
            value = torch.rand(shape, generator=g) * 0.2
        elif len(shape) == 1:  # other BN gammas
            value = torch.rand(shape, generator=g) * 0.5 + 0.5
        else:
            value = torch.randn(shape, generator=g) * math.sqrt(2.0 / math.prod(shape[1:]))
        state[key] = value.float()
    state["seg.weight"] *= 4
    return state


def functional_logp(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """DRNSeg.forward(x)[0] with torch.nn.functional, reading the state dict."""

    def bn(t, p):
        return F.batch_norm(t, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"],
                            state[f"{p}.bias"], False, 0.0, 1e-5)

    x = F.relu(bn(F.conv2d(x, state["base.0.0.weight"], padding=3), "base.0.1"))
    for i in (1, 2):
        _, _, s, d = CONV_STAGES[i]
        x = F.relu(bn(F.conv2d(x, state[f"base.{i}.0.weight"], stride=s, padding=d, dilation=d), f"base.{i}.1"))
    for i, _, n, stride, d in BOTTLENECK_STAGES:
        for j in range(n):
            p, s = f"base.{i}.{j}", stride if j == 0 else 1
            out = F.relu(bn(F.conv2d(x, state[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, state[f"{p}.conv2.weight"], stride=s, padding=d, dilation=d), f"{p}.bn2"))
            out = bn(F.conv2d(out, state[f"{p}.conv3.weight"]), f"{p}.bn3")
            if j == 0:
                x = bn(F.conv2d(x, state[f"{p}.downsample.0.weight"], stride=s), f"{p}.downsample.1")
            x = F.relu(out + x)
    for i in (7, 8):
        _, _, s, d = CONV_STAGES[i]
        x = F.relu(bn(F.conv2d(x, state[f"base.{i}.0.weight"], stride=s, padding=d, dilation=d), f"base.{i}.1"))
    x = F.conv2d(x, state["seg.weight"], state["seg.bias"])
    x = F.conv_transpose2d(x, state["up.weight"], stride=8, padding=4, groups=19)
    return F.log_softmax(x, dim=1)


def reference_input(photo: np.ndarray) -> torch.Tensor:
    """data_transforms.ToTensor + Normalize(info.json) of one H x W x 3 uint8 photo, in numpy."""
    x = (photo.astype(np.float32) / np.float32(255) - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def reference_single_scale(state, photo: np.ndarray) -> np.ndarray:
    """segment.test: argmax of the log-probabilities, cropped to the photo (top-left)."""
    h, w = photo.shape[:2]
    logp = functional_logp(state, reference_input(photo))
    assert logp.shape[-2:] == (8 * math.ceil(h / 8), 8 * math.ceil(w / 8))
    return logp[0, :, :h, :w].argmax(0).numpy()


def reference_multi_scale(state, photo: np.ndarray) -> np.ndarray:
    """segment.test_ms with SegListMS: PIL bicubic scales, PIL bilinear of each log-probability plane, summed."""
    h, w = photo.shape[:2]
    image = Image.fromarray(photo)
    inputs = [photo] + [np.asarray(image.resize((int(w * s), int(h * s)), Image.BICUBIC))
                        for s in (0.5, 0.75, 1.25, 1.5, 1.75)]
    outputs = []
    for one in inputs:
        planes = functional_logp(state, reference_input(one))[0].numpy()
        if planes.shape[-2:] != (h, w):
            planes = np.stack([np.array(Image.fromarray(p).resize((w, h), Image.BILINEAR)) for p in planes])
        outputs.append(planes)
    return sum(outputs).argmax(axis=0)


def photos(seed: int, n: int, h: int, w: int) -> np.ndarray:
    """Smooth random uint8 photos (n x h x w x 3): blobs, so that the network sees some structure."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, max(2, h // 8), max(2, w // 8), generator=g)
    x = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    x = x + 0.1 * torch.rand(n, 3, h, w, generator=g)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def as_images(batch: np.ndarray) -> torch.Tensor:
    """The contract's input: float RGB in [0, 1] (uint8 / 255)."""
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    state = random_state()
    path = tmp_path_factory.mktemp("drn") / FILE
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def segmenter(checkpoint):
    return build_segmenter("drn", checkpoint[0])


def test_single_scale_matches_reference(checkpoint, segmenter):
    _, state = checkpoint
    assert segmenter.facts.label_nc == 19 and segmenter.file_id_offset == 0 and "single-scale" in segmenter.procedure
    seen = set()
    for seed, (n, h, w) in enumerate(((2, 24, 40), (1, 20, 30))):  # 20 x 30: the output overhangs by 4 x 2
        batch = photos(seed, n, h, w)
        pred = segmenter.predict(as_images(batch))
        assert pred.dtype == torch.int64 and pred.shape == (n, h, w)
        for k in range(n):
            expected = reference_single_scale(state, batch[k])
            assert np.array_equal(pred[k].numpy(), expected)
            seen |= set(np.unique(expected).tolist())
    assert len(seen) >= 3, f"random weights predict too few classes to test: {seen}"


def test_size_upsamples_log_probabilities(checkpoint, segmenter):
    _, state = checkpoint
    batch = photos(5, 1, 20, 30)
    logp = functional_logp(state, reference_input(batch[0]))[:, :, :20, :30]
    expected = F.interpolate(logp, size=(32, 45), mode="bilinear", align_corners=False).argmax(1)
    assert torch.equal(segmenter.predict(as_images(batch), size=(32, 45)), expected)


def test_multi_scale_matches_reference(checkpoint):
    """20 x 30: scales 10 x 15 .. 35 x 52, none a multiple of 8; every output is resized, none cropped."""
    path, state = checkpoint
    segmenter = build_segmenter("drn", path, options={"multi_scale": True})
    assert "multi-scale" in segmenter.procedure
    batch = photos(10, 1, 20, 30)
    pred = segmenter.predict(as_images(batch))
    assert pred.shape == (1, 20, 30)
    assert np.array_equal(pred[0].numpy(), reference_multi_scale(state, batch[0]))


def test_parameter_count_is_published():
    """README: DRN-D-105 has 54.8M parameters: the drn_d_105 trunk with its 1000-class ImageNet fc (1x1 conv
    512 -> 1000). DRNSeg keeps the trunk without avgpool/fc and adds seg (512 -> 19) and up (19 x 16 x 16)."""
    from spadekit_plugins.drn.network import DRNSeg

    model = DRNSeg()
    total = sum(p.numel() for p in model.parameters())
    trunk = sum(p.numel() for p in model.base.parameters())
    print(f"DRNSeg('drn_d_105', 19): {total} parameters; trunk {trunk}; trunk + ImageNet fc {trunk + 513_000}")
    assert round((trunk + 512 * 1000 + 1000) / 1e6, 1) == 54.8
    assert total == trunk + 512 * 19 + 19 + 19 * 16 * 16
    assert {k: tuple(v.shape) for k, v in model.state_dict().items() if "num_batches" not in k} == reference_shapes()


def test_missing_file_names_file_and_url(tmp_path, monkeypatch):
    with pytest.raises(SpadekitError, match=FILE) as err:
        build_segmenter("drn", tmp_path)  # a folder without the file
    assert "go.yf.io/drn-cityscapes-models" in str(err.value)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(SpadekitError, match=FILE) as err:
        build_segmenter("drn")
    assert "go.yf.io/drn-cityscapes-models" in str(err.value)


def test_mis_shaped_key_is_named(tmp_path):
    shapes = reference_shapes()
    shapes["base.5.7.conv2.weight"] = (256, 256, 1, 1)
    path = tmp_path / FILE
    torch.save({k: torch.zeros(()).expand(s) for k, s in shapes.items()}, path)  # views: a tiny file
    with pytest.raises(SpadekitError, match=r"base\.5\.7\.conv2\.weight"):
        build_segmenter("drn", path)


def test_num_batches_tracked_entries_load(tmp_path):
    """Files written by torch >= 0.4 carry num_batches_tracked; they load too (constant views: a tiny file)."""
    values = {k: torch.full((), float(i)).expand(s) for i, (k, s) in enumerate(reference_shapes().items())}
    tracked = {**values, **{k.replace("running_mean", "num_batches_tracked"): torch.tensor(7)
                            for k in values if k.endswith("running_mean")}}
    torch.save(tracked, tmp_path / FILE)
    loaded = build_segmenter("drn", tmp_path).model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in values.items())


def test_cannot_be_trained():
    from spadekit.data.labelspaces import cityscapes_trainid_facts

    with pytest.raises(SpadekitError, match="cannot be trained"):
        build_segmenter("drn", facts=cityscapes_trainid_facts())
