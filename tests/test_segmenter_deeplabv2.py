"""The `deeplabv2` segmenter: kazuto1011/deeplab-pytorch's DeepLabV2-ResNet101 MSC for COCO-Stuff 164k.

A random state dict with the published file's key names and shapes (written out here from the reference's
architecture, not from the plugin's modules) goes through `build_segmenter`, and its predictions are compared
with an independent functional forward of the reference's test procedure computed from the same state dict.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spadekit.errors import SpadekitError
from spadekit.segmenter import build_segmenter
from spadekit_plugins.deeplabv2.spec import WEIGHTS_FILE, WEIGHTS_URL, spec

N_CLASSES = 182
# (layer, blocks, out channels, stride, dilation) of DeepLabV2's ResNet-101 trunk (output stride 8)
LAYERS = [(2, 3, 256, 1, 1), (3, 4, 512, 2, 1), (4, 23, 1024, 1, 2), (5, 3, 2048, 1, 4)]
RATES = [6, 12, 18, 24]
MEAN_BGR = np.array([104.008, 116.669, 122.675])  # float64, as the reference's dataset holds it
REFERENCE_PARAMETERS = 55_919_384  # trainable parameters (running statistics excluded)


def published_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of `deeplabv2_resnet101_msc-cocostuff164k-100000.pth` (the MSC module's state_dict)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def unit(prefix: str, out_ch: int, in_ch: int, k: int) -> None:
        shapes[f"{prefix}.conv.weight"] = (out_ch, in_ch, k, k)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.bn.{name}"] = (out_ch,)
        shapes[f"{prefix}.bn.num_batches_tracked"] = ()

    unit("base.layer1.conv1", 64, 3, 7)
    in_ch = 64
    for layer, blocks, out_ch, _, _ in LAYERS:
        mid = out_ch // 4
        for b in range(1, blocks + 1):
            prefix = f"base.layer{layer}.block{b}"
            unit(f"{prefix}.reduce", mid, in_ch if b == 1 else out_ch, 1)
            unit(f"{prefix}.conv3x3", mid, mid, 3)
            unit(f"{prefix}.increase", out_ch, mid, 1)
            if b == 1:
                unit(f"{prefix}.shortcut", out_ch, in_ch, 1)
        in_ch = out_ch
    for i in range(len(RATES)):
        shapes[f"base.aspp.c{i}.weight"] = (N_CLASSES, 2048, 3, 3)
        shapes[f"base.aspp.c{i}.bias"] = (N_CLASSES,)
    return shapes


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """He-scaled convs, randomized batch norms whose residual branches are damped (so that 33 blocks neither
    explode nor wash out), and ASPP weights large enough that the argmax varies from pixel to pixel."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in published_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("conv.weight") or key.startswith("base.aspp") and key.endswith("weight"):
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif key.endswith("running_mean") or key.endswith("bias"):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        else:  # bn.weight
            damp = 0.2 if ".increase." in key else 1.0
            state[key] = damp * (0.5 + torch.rand(shape, generator=g))
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    state = random_state()
    path = tmp_path_factory.mktemp("deeplabv2") / WEIGHTS_FILE
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def segmenter(weights):
    return build_segmenter("deeplabv2", weights[0])


# -- the independent reference: a functional forward straight from the state dict ------------------------------

def conv_bn(sd, prefix, x, stride=1, padding=0, dilation=1, relu=True):
    x = F.conv2d(x, sd[f"{prefix}.conv.weight"], None, stride, padding, dilation)
    x = F.batch_norm(x, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"], sd[f"{prefix}.bn.weight"],
                     sd[f"{prefix}.bn.bias"], False, 0.0, 1e-5)
    return F.relu(x) if relu else x


def base_forward(sd, x):
    x = conv_bn(sd, "base.layer1.conv1", x, 2, 3)
    x = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)
    for layer, blocks, _, stride, dilation in LAYERS:
        for b in range(1, blocks + 1):
            prefix = f"base.layer{layer}.block{b}"
            s = stride if b == 1 else 1
            h = conv_bn(sd, f"{prefix}.reduce", x, s)  # caffe style: the stride is in the first 1x1 conv
            h = conv_bn(sd, f"{prefix}.conv3x3", h, 1, dilation, dilation)
            h = conv_bn(sd, f"{prefix}.increase", h, relu=False)
            shortcut = conv_bn(sd, f"{prefix}.shortcut", x, s, relu=False) if b == 1 else x
            x = F.relu(h + shortcut)
    out = 0
    for i, rate in enumerate(RATES):
        out = out + F.conv2d(x, sd[f"base.aspp.c{i}.weight"], sd[f"base.aspp.c{i}.bias"], 1, rate, rate)
    return out


def reference_logits(sd, bgr):
    logits = base_forward(sd, bgr)
    scaled = [base_forward(sd, F.interpolate(bgr, scale_factor=p, mode="bilinear", align_corners=False))
              for p in (0.5, 0.75)]
    resized = [F.interpolate(s, size=logits.shape[-2:], mode="bilinear", align_corners=False) for s in scaled]
    return torch.stack([logits, *resized]).max(0).values


def reference_input(pixels_rgb: np.ndarray) -> torch.Tensor:
    """pixels: B x H x W x 3 uint8 RGB -> the dataset's float32 BGR image minus the float64 mean, B x 3 x H x W."""
    bgr = pixels_rgb[..., ::-1].astype(np.float32)
    bgr -= MEAN_BGR
    return torch.from_numpy(bgr.transpose(0, 3, 1, 2).copy())


def reference_labels(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """main.py test: logits upsampled to the label size, softmax, argmax."""
    up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return F.softmax(up, dim=1).argmax(1)


def random_pixels(seed, batch, height, width) -> np.ndarray:
    """Random photos with some structure: a smooth colour field plus noise, uint8 RGB."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 4, 5, generator=g)
    field = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    noisy = (field + 0.15 * torch.rand(batch, 3, height, width, generator=g)).clamp(0, 1)
    return (noisy * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# -- tests ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch, height, width, other_size", [(2, 41, 57, None), (1, 33, 33, (20, 47))])
def test_predict_matches_reference(segmenter, weights, batch, height, width, other_size):
    """Odd sizes: 41 * 0.75 and 33 * 0.75 are not whole, so the scaled inputs' sizes and sampling grids follow
    F.interpolate(scale_factor=...); `other_size` reads the labels off the same logits at another size."""
    pixels = random_pixels(height * width + batch, batch, height, width)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected_logits = reference_logits(weights[1], reference_input(pixels))
    logits = segmenter.logits(images)
    assert logits.shape == (batch, N_CLASSES, math.ceil(height / 8), math.ceil(width / 8))
    assert torch.equal(logits, expected_logits)
    for size in [(height, width), *([other_size] if other_size else [])]:
        labels = segmenter.predict(images, size=None if size == (height, width) else size)
        assert labels.dtype == torch.int64 and labels.shape == (batch, *size)
        assert torch.equal(labels, reference_labels(expected_logits, size))
        assert labels.unique().numel() >= 3, "the random weights should give varied predictions"


def test_parameter_count(segmenter):
    count = sum(p.numel() for p in segmenter.model.parameters())
    print(f"deeplabv2 parameters: {count:,}")
    assert count == REFERENCE_PARAMETERS


def test_segmenter_contract(segmenter):
    assert segmenter.facts.label_nc == N_CLASSES and segmenter.file_id_offset == 0
    assert "0.75" in segmenter.procedure and not segmenter.model.training
    tf32 = torch.backends.cudnn.allow_tf32
    labels = segmenter.predict(torch.rand(1, 3, 9, 11))
    assert labels.shape == (1, 9, 11) and int(labels.min()) >= 0 and int(labels.max()) < N_CLASSES
    assert torch.backends.cudnn.allow_tf32 == tf32, "the TF32 switch is restored after the forward"
    with pytest.raises(ValueError, match="at least 2"):
        segmenter.predict(torch.zeros(1, 3, 1, 9))


def test_missing_file_names_it_and_the_url(tmp_path, monkeypatch):
    with pytest.raises(SpadekitError) as err:
        build_segmenter("deeplabv2", tmp_path / "nowhere.pth")
    assert WEIGHTS_FILE in str(err.value) and WEIGHTS_URL in str(err.value)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(SpadekitError) as err:
        build_segmenter("deeplabv2")
    assert WEIGHTS_FILE in str(err.value) and WEIGHTS_URL in str(err.value)


def test_misshaped_key_is_named(weights, tmp_path):
    state = dict(weights[1])
    state["base.aspp.c2.bias"] = torch.zeros(N_CLASSES - 1)
    path = tmp_path / WEIGHTS_FILE
    torch.save(state, path)
    with pytest.raises(SpadekitError, match=r"base\.aspp\.c2\.bias"):
        build_segmenter("deeplabv2", path)


def test_cannot_be_trained():
    from spadekit.data.labelspaces import coco_stuff_facts

    with pytest.raises(SpadekitError, match="cannot be trained"):
        spec.build({}, device=torch.device("cpu"), facts=coco_stuff_facts())
