"""VGG19 perceptual loss (SPADE's lambda_vgg term) on torchvision's ImageNet weights, loaded from disk only.

The weights are torchvision's `vgg19-dcbb9e9d.pth`, found at a path the user gives or in the torch hub
cache. Nothing is downloaded at run time and there is no fallback to random weights: a missing or bad
file is a SpadekitError that says where to put the file or how to turn the loss off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spadekit.errors import SpadekitError
from spadekit.weights import load_weights_only

# torchvision's VGG19 `features` up to relu5_1 ("M" is a 2x2 max pool); indices match `vgg19().features`.
_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# Slice ends for relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, as in the official VGG19 wrapper.
SLICE_ENDS = (2, 7, 12, 21, 30)
LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def vgg19_url() -> str:
    """Where torchvision publishes the ImageNet VGG19 weights."""
    from torchvision.models import VGG19_Weights

    return VGG19_Weights.IMAGENET1K_V1.url


def default_vgg19_path() -> Path:
    """The torch hub cache file torchvision would download the VGG19 weights to (honours TORCH_HOME)."""
    name = os.path.basename(urlparse(vgg19_url()).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


class VGG19Features(nn.Module):
    """Frozen VGG19 conv layers returning relu1_1 ... relu5_1; get trained weights through `load_vgg19`."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = item
        assert len(layers) == SLICE_ENDS[-1]
        self.features = nn.Sequential(*layers)  # named so state_dict keys match torchvision's `features.N.*`
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Always stay in eval mode; the network is a fixed feature extractor."""
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs, start = [], 0
        for end in SLICE_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            outs.append(x)
            start = end
        return outs


def _read_state_dict(path: Path, expected: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Load and check a torchvision VGG19 state_dict, keeping only the `features.*` entries in `expected`."""
    state = load_weights_only(path, f"VGG19 weights file {path}", f"replace it with a fresh download of {vgg19_url()}")
    if not isinstance(state, Mapping):
        raise SpadekitError(
            f"VGG19 weights file {path} holds a {type(state).__name__}, not a state_dict; "
            f"replace it with a fresh download of {vgg19_url()}."
        )
    missing = [k for k in expected if k not in state]
    if missing:
        raise SpadekitError(
            f"VGG19 weights file {path} lacks {len(missing)} expected keys (first: {missing[0]!r}), so it is not "
            f"torchvision's VGG19 state_dict; replace it with a fresh download of {vgg19_url()}."
        )
    for key, ref in expected.items():
        value = state[key]
        if not isinstance(value, Tensor) or value.shape != ref.shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise SpadekitError(
                f"VGG19 weights file {path} has {key} of shape {got} instead of {tuple(ref.shape)}; "
                f"replace it with a fresh download of {vgg19_url()}."
            )
    return {k: state[k] for k in expected}


def resolve_vgg19_path(weights: str | os.PathLike | None = None) -> Path:
    """The weights file to use: `weights` if given, else the torch hub cache; SpadekitError if it is missing."""
    default = default_vgg19_path()
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise SpadekitError(
                f"VGG19 weights file {path} (loss.vgg_weights) does not exist; fix the path, or download "
                f"{vgg19_url()} and put it at {default}, or set loss.lambda_vgg = 0 to turn the VGG loss off."
            )
        return path
    if not default.is_file():
        raise SpadekitError(
            f"VGG19 weights for the perceptual loss are missing: {default} does not exist; download "
            f"{vgg19_url()} on a machine with internet and put it at {default}, or set "
            f'loss.vgg_weights = "PATH" in the recipe to use a copy elsewhere, '
            f"or set loss.lambda_vgg = 0 to turn the VGG loss off."
        )
    return default


def load_vgg19(weights: str | os.PathLike | None = None) -> VGG19Features:
    """VGG19Features with torchvision's ImageNet weights from `weights` or the torch hub cache (never downloads)."""
    path = resolve_vgg19_path(weights)
    model = VGG19Features()
    model.load_state_dict(_read_state_dict(path, model.state_dict()))
    return model


class VGGLoss(nn.Module):
    """SPADE's perceptual loss: sum_i w_i * L1(VGG_i(fake), VGG_i(real)), w = 1/32, 1/16, 1/8, 1/4, 1."""

    def __init__(self, features: VGG19Features | None = None, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.vgg = features if features is not None else load_vgg19(weights)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        # Images in [-1, 1] go in as they are, WITHOUT ImageNet mean/std normalisation, exactly as the
        # official SPADE code does; normalising would change the loss the published models were trained with.
        fake_feats = self.vgg(fake)
        with torch.no_grad():
            real_feats = self.vgg(real)
        loss = fake.new_zeros((), dtype=torch.float32)
        for w, f, r in zip(LAYER_WEIGHTS, fake_feats, real_feats, strict=True):
            loss = loss + w * F.l1_loss(f.float(), r.float())
        return loss
