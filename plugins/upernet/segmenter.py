"""UperNetSegmenter: CSAIL's UperNet-101 (ADE20K) behind spadekit's segmenter contract, with the repository's
multi-scale test (`mit_semseg/dataset.py` TestDataset + `test.py`/`eval.py`).

For each image and each short side s of `img_sizes`: scale = min(s / short side, img_max_size / long side);
the scaled sides are int()-truncated, then rounded UP to a multiple of `padding_constant`
(`round2nearest_multiple`), so the image is stretched, not padded; the uint8 RGB image is resized with PIL's
bilinear `resize((w, h))`; /255 and the ImageNet mean/std; the network's logits are upsampled (bilinear,
align_corners=False) to segSize, softmaxed, and added in with weight 1 / len(img_sizes); argmax.
segSize is the photo's size, or `size` when one is given (the logits are then upsampled straight to `size`).

The photos arrive as floats in [0, 1] that are uint8 / 255 in practice; the uint8 values are recovered with
round(x * 255), so PIL sees the pixels the repository would have read from the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from spadekit.plugin import ade20k_150_facts, find_weights, load_into, read_state_dict
from spadekit_plugins.upernet.network import Resnet, SegmentationModule, UPerNet
from spadekit_plugins.upernet.spec import WEIGHTS_URL, UperNetOptions

ENCODER_FILE = "encoder_epoch_50.pth"
DECODER_FILE = "decoder_epoch_50.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Old SynchronizedBatchNorm buffers saved in the published files; the repository loads with strict=False.
IGNORED_SUFFIXES = ("num_batches_tracked", "_tmp_running_mean", "_tmp_running_var", "_running_iter")


def round2nearest_multiple(x: int, p: int) -> int:
    """The smallest multiple of p that is >= x (the repository's name; it rounds up, not to the nearest)."""
    return ((x - 1) // p + 1) * p


def scale_sizes(height: int, width: int, img_sizes, img_max_size: int, padding_constant: int) -> list[tuple[int, int]]:
    """(h, w) of the network input at each test scale, computed as TestDataset does."""
    sizes = []
    for short_size in img_sizes:
        scale = min(short_size / float(min(height, width)), img_max_size / float(max(height, width)))
        target_height, target_width = int(height * scale), int(width * scale)
        sizes.append((round2nearest_multiple(target_height, padding_constant),
                      round2nearest_multiple(target_width, padding_constant)))
    return sizes


def to_uint8(images: Tensor) -> np.ndarray:
    """B x H x W x 3 uint8 from B x 3 x H x W floats in [0, 1]."""
    return (images.detach().float().cpu() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def img_transform(photo: np.ndarray, size: tuple[int, int]) -> Tensor:
    """PIL bilinear resize to (h, w) = size, then the repository's img_transform (/255, ImageNet mean/std)."""
    resized = Image.fromarray(photo).resize((size[1], size[0]), Image.BILINEAR)
    img = torch.from_numpy(np.float32(np.array(resized)) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return (img - mean) / std  # torchvision's Normalize: sub then div, in float32


@contextmanager
def ieee_fp32(device: torch.device) -> Iterator[None]:
    """cuDNN convolutions in true fp32 (PyTorch runs them in TF32 by default on Ampere and later GPUs)."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if device.type != "cuda" or conv is None or not hasattr(conv, "fp32_precision"):
        yield
        return
    previous, conv.fp32_precision = conv.fp32_precision, "ieee"
    try:
        yield
    finally:
        conv.fp32_precision = previous


def load_network(checkpoint: str | None) -> tuple[SegmentationModule, list[Path]]:
    """Encoder and decoder with the published weights, and the two files; the decoder file is looked for beside
    the encoder's."""
    what = "UperNet-101 (ADE20K, CSAIL semantic-segmentation-pytorch)"
    encoder_path = find_weights(checkpoint, ENCODER_FILE, WEIGHTS_URL + ENCODER_FILE, what=f"the {what} encoder")
    decoder_path = find_weights(encoder_path.parent, DECODER_FILE, WEIGHTS_URL + DECODER_FILE,
                                what=f"the {what} decoder, kept beside {ENCODER_FILE},")
    encoder, decoder = Resnet(), UPerNet()
    load_into(encoder, read_state_dict(encoder_path), encoder_path, ignore_suffixes=IGNORED_SUFFIXES)
    load_into(decoder, read_state_dict(decoder_path), decoder_path, ignore_suffixes=IGNORED_SUFFIXES)
    return SegmentationModule(encoder, decoder), [encoder_path, decoder_path]


class UperNetSegmenter:
    file_id_offset = 1  # class c is ADE20K annotation value c + 1

    def __init__(self, model: SegmentationModule, options: UperNetOptions, device: torch.device | str | None = None):
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device).eval()
        self.encoder, self.decoder = self.model.encoder, self.model.decoder
        self.img_sizes = tuple(options.img_sizes)
        self.img_max_size = options.img_max_size
        self.padding_constant = options.padding_constant
        self.facts = ade20k_150_facts()
        self.procedure = (
            f"CSAIL test: short side {'/'.join(map(str, self.img_sizes))} (long side <= {self.img_max_size}), "
            f"sides rounded up to x{self.padding_constant}, PIL bilinear, ImageNet mean/std; softmax of logits "
            "upsampled (bilinear) to the output size, averaged over scales; fp32"
        )

    @classmethod
    def from_options(cls, options: UperNetOptions, device=None) -> UperNetSegmenter:
        network, files = load_network(options.checkpoint)
        segmenter = cls(network, options, device)
        segmenter.weight_files = files
        return segmenter

    def scores(self, photos: np.ndarray, seg_size: tuple[int, int]) -> Tensor:
        """Class probabilities B x 150 x seg_size averaged over the test scales (`scores` in test.py)."""
        height, width = photos.shape[1:3]
        sizes = scale_sizes(height, width, self.img_sizes, self.img_max_size, self.padding_constant)
        scores = torch.zeros(len(photos), len(self.facts.class_names), *seg_size, device=self.device)
        for size in sizes:
            img_data = torch.stack([img_transform(photo, size) for photo in photos]).to(self.device)
            pred = F.softmax(self.model(img_data, seg_size), dim=1)
            scores += pred / len(sizes)  # test.py's `scores = scores + pred_tmp / len(imgSizes)`, in place
        return scores

    @torch.no_grad()
    def predict(self, images: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """int64 class ids 0..149, B x h x w at `size` (default: the input size), on the images' device."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape B x 3 x H x W, got {tuple(images.shape)}")
        seg_size = tuple(size) if size is not None else tuple(images.shape[-2:])
        was_training = self.model.training
        self.model.eval()
        try:
            with ieee_fp32(self.device):
                scores = self.scores(to_uint8(images), seg_size)
        finally:
            self.model.train(was_training)
        return scores.argmax(1).to(images.device)
