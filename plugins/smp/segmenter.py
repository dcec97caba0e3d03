"""SmpSegmenter: a segmentation_models_pytorch network behind spadekit's segmenter contract.

What `predict` does to a batch of RGB photos in [0, 1] (B x 3 x H x W): resize (bilinear, antialiased) so
that the shorter side is `input_size` and the longer side keeps the aspect ratio, rounded to a multiple
of 32; normalize with the ImageNet mean/std; run the network; upsample the logits bilinearly to the requested
size; take the argmax. Without gradients, in eval mode (the previous mode is restored afterwards).

For training (`spadekit.segmenter_train`): `model` is the nn.Module, `logits(images)` is the differentiable
forward pass at network resolution, `network_size(h, w)` is the input size it resizes to, and
`save(path, **extra)` writes the checkpoint atomically.

Checkpoint format (a dict read with `torch.load(weights_only=True)`): "format" = "spadekit-smp-segmenter",
"format_version" = 1, "arch", "encoder", "input_size", "facts" (the DatasetFacts as plain data),
"state_dict", "spadekit_version", plus what the trainer adds ("epoch", "scores", "shards").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spadekit.plugin import (
    DatasetFacts,
    SpadekitError,
    __version__,
    load_weights_only,
    save_checkpoint,
    verify_checksum,
)
from spadekit_plugins.smp.spec import (
    DEFAULT_ARCH,
    DEFAULT_ENCODER,
    DEFAULT_INPUT_SIZE,
    SIZE_MULTIPLE,
    SmpOptions,
)

FORMAT = "spadekit-smp-segmenter"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRAIN_HINT = "train one with `spadekit segmenter train SHARDS --out DIR`"


class SmpSegmenter:
    def __init__(
        self,
        model: nn.Module,
        arch: str,
        encoder: str,
        input_size: int,
        facts: DatasetFacts,
        device: torch.device | str | None = None,
    ):
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device)
        self.arch, self.encoder, self.input_size, self.facts = arch, encoder, input_size, facts
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def fresh(cls, options: SmpOptions, facts: DatasetFacts, device=None) -> SmpSegmenter:
        """An untrained network for `facts`' classes (the encoder pretrained if `encoder_weights` says so)."""
        arch, encoder = options.arch or DEFAULT_ARCH, options.encoder or DEFAULT_ENCODER
        model = create_model(arch, encoder, facts.label_nc, options.encoder_weights)
        return cls(model, arch, encoder, options.input_size or DEFAULT_INPUT_SIZE, facts, device)

    @classmethod
    def from_checkpoint(cls, options: SmpOptions, device=None, facts: DatasetFacts | None = None) -> SmpSegmenter:
        """The network saved in `options.checkpoint`; its weights load strictly."""
        path = Path(options.checkpoint)
        state = read_checkpoint(path)
        try:
            arch, encoder, saved = state["arch"], state["encoder"], DatasetFacts.model_validate(state["facts"])
            input_size, weights = int(state["input_size"]), state["state_dict"]
        except (KeyError, TypeError, ValueError) as err:
            problem = _first_line(err)
            raise SpadekitError(f"Segmenter checkpoint {path} is damaged ({problem}); train it again.") from None
        _check_agrees(options, arch, encoder, path)
        if facts is not None and facts.class_names != saved.class_names:
            raise SpadekitError(
                f"Segmenter checkpoint {path} predicts the classes of {saved.name!r}, not those of {facts.name!r}; "
                f"use a segmenter trained on {facts.name!r}, or {TRAIN_HINT}."
            )
        model = create_model(arch, encoder, saved.label_nc, None)
        try:
            model.load_state_dict(weights, strict=True)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise SpadekitError(
                f"Segmenter checkpoint {path} does not fit a {arch}/{encoder} network ({_first_line(err)}); "
                "it is damaged, or was written by another version; train it again."
            ) from None
        return cls(model, arch, encoder, options.input_size or input_size, saved, device)

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the network sees: shorter side `input_size`, aspect ratio kept, sides multiples of 32."""
        scale = self.input_size / min(height, width)

        def side(n: int) -> int:
            return max(SIZE_MULTIPLE, round(n * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)

        return side(height), side(width)

    def logits(self, images: Tensor) -> Tensor:
        """Class scores B x C x h x w at network resolution for RGB images in [0, 1]; gradients flow."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape B x 3 x H x W, got {tuple(images.shape)}")
        x = images.to(self.device, torch.float32)
        size = self.network_size(*x.shape[-2:])
        if size != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return self.model((x - self._mean) / self._std)

    @torch.no_grad()
    def predict(self, images: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """int64 class ids B x h x w at `size` (default: the input size), on the images' device."""
        size = tuple(size) if size is not None else tuple(images.shape[-2:])
        was_training = self.model.training
        self.model.eval()
        try:
            logits = self.logits(images)
        finally:
            self.model.train(was_training)
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits.argmax(1).to(images.device)

    def checkpoint_state(self, **extra: Any) -> dict:
        """What `save` writes: the format fields, the network and its label space, plus `extra`."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "arch": self.arch,
            "encoder": self.encoder,
            "input_size": self.input_size,
            "facts": self.facts.model_dump(mode="json"),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "spadekit_version": __version__,
            **extra,
        }

    def save(self, path: Path, **extra: Any) -> None:
        """Write the checkpoint atomically: `path` holds the previous file or the whole new one."""
        save_checkpoint(Path(path), self.checkpoint_state(**extra))


def create_model(arch: str, encoder: str, classes: int, encoder_weights: str | None) -> nn.Module:
    """smp.create_model, with unknown names and missing pretrained weights as SpadekitErrors."""
    import segmentation_models_pytorch as smp

    try:
        return smp.create_model(arch, encoder_name=encoder, encoder_weights=encoder_weights, classes=classes)
    except KeyError as err:  # smp's message lists the valid architectures, encoders or weights
        raise SpadekitError(f"Segmenter 'smp' cannot build {arch}/{encoder}: {err.args[0]}") from None
    except OSError as err:  # huggingface_hub's download and cache errors are OSErrors
        if encoder_weights is None:
            raise
        raise SpadekitError(missing_weights_message(encoder, encoder_weights, err)) from None


def missing_weights_message(encoder: str, weights: str, err: Exception) -> str:
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    return (
        f"The pretrained {weights!r} weights of encoder {encoder!r} are not in the Hugging Face cache and could "
        f"not be downloaded ({_first_line(err)}): expected {cache / pretrained_file(encoder, weights)} "
        f"(with its config.json) under the cache folder {cache}; copy them there from a machine "
        "with internet (HF_HUB_CACHE or HF_HOME move the cache), or leave encoder_weights unset (no --encoder-weights) "
        "to start from random weights, as `spadekit segmenter train` does by default; HF_HUB_OFFLINE=1 skips the "
        "download attempt."
    )


def pretrained_file(encoder: str, weights: str) -> str:
    """Where smp (or timm, for "tu-" encoders) keeps an encoder's weights, relative to the Hugging Face cache."""
    from huggingface_hub.file_download import repo_folder_name

    if encoder.startswith("tu-"):
        import timm

        config = timm.models.get_pretrained_cfg(encoder[3:])
        repo, revision = getattr(config, "hf_hub_id", None) or f"timm/{encoder[3:]}", "*"
    else:
        from segmentation_models_pytorch.encoders import encoders

        settings = encoders[encoder]["pretrained_settings"][weights]
        repo, revision = settings["repo_id"], settings["revision"]
    return f"{repo_folder_name(repo_id=repo, repo_type='model')}/snapshots/{revision}/model.safetensors"


def read_checkpoint(path: Path) -> dict:
    """The checkpoint dict, or a SpadekitError naming the file when it is missing or not ours."""
    if not path.is_file():
        raise SpadekitError(f"Segmenter checkpoint {path} does not exist; check the path, or {TRAIN_HINT}.")
    state = load_weights_only(path, f"Segmenter checkpoint {path}",
                              f"it is damaged or not a spadekit smp segmenter; {TRAIN_HINT}")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SpadekitError(
            f"{path} is not a spadekit smp segmenter checkpoint (no format {FORMAT!r}); point to the segmenter.pt "
            f"that `spadekit segmenter train` writes, or {TRAIN_HINT}."
        )
    verify_checksum(state, path, "Segmenter checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise SpadekitError(
            f"Segmenter checkpoint {path} has format version {state.get('format_version')!r}, this spadekit reads "
            f"{FORMAT_VERSION}; {TRAIN_HINT}."
        )
    return state


def _check_agrees(options: SmpOptions, arch: str, encoder: str, path: Path) -> None:
    for key, given, saved in (("arch", options.arch, arch), ("encoder", options.encoder, encoder)):
        if given is not None and given.lower() != saved.lower():
            raise SpadekitError(
                f"Segmenter option {key}={given!r} disagrees with checkpoint {path} ({key} {saved!r}); "
                f"leave {key} unset to use the checkpoint's."
            )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
