"""DeepLabV2Segmenter: kazuto1011/deeplab-pytorch's COCO-Stuff 164k DeepLabV2 behind spadekit's segmenter contract.

`predict` repeats the reference's test procedure (`main.py test` with `configs/cocostuff164k.yaml`, whose test
set is not resized) on photos given as RGB in [0, 1]:
1. pixels: (x * 255).round(), i.e. the uint8 values the reference reads with cv2; channels reversed to BGR;
2. the BGR mean (104.008, 116.669, 122.675) subtracted as numpy does it there (float64, then float32); no /255,
   no std, no resize;
3. the MSC forward of `network.py` (scales 1, 0.5, 0.75, fused by element-wise max) at about 1/8 resolution;
4. logits upsampled bilinearly (align_corners=False) to the output size, softmax over classes, argmax.
The reference upsamples to the image (= label) size; `predict(size=...)` upsamples to `size` instead, so a
smaller or larger label map is read off the same logits. fp32 throughout (no TF32 convolutions on GPUs),
without gradients, in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from spadekit.plugin import coco_stuff_facts, find_weights, load_into, read_state_dict
from spadekit_plugins.deeplabv2.network import MSC, N_CLASSES, deeplabv2_resnet101_msc
from spadekit_plugins.deeplabv2.spec import WEIGHTS_FILE, WEIGHTS_URL

MEAN_BGR = (104.008, 116.669, 122.675)
PROCEDURE = ("DeepLabV2-ResNet101 MSC (kazuto1011/deeplab-pytorch, COCO-Stuff 164k): BGR 0-255 minus mean "
             "(104.008, 116.669, 122.675), no resize; logits at scales 1, 0.5, 0.75 (bilinear, align_corners=False) "
             "fused by element-wise max at about 1/8 size; bilinear upsampling to the output size; softmax; argmax")


def ieee_fp32_convs():
    """cuDNN runs fp32 convolutions in TF32 by default on recent GPUs, which moves this network's argmax like
    bf16 does; the reference ran them in full fp32. Only cuDNN's TF32 switch changes (restored afterwards)."""
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                       allow_tf32=False)


class DeepLabV2Segmenter:
    file_id_offset = 0  # stuffthingmaps PNGs hold the class ids 0..181 themselves
    procedure = PROCEDURE

    def __init__(self, model: MSC, device: torch.device | str | None = None):
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device).eval()
        self.facts = coco_stuff_facts()
        self._mean = torch.tensor(MEAN_BGR, dtype=torch.float64, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(cls, checkpoint: Path | str | None, device=None) -> DeepLabV2Segmenter:
        """The published weights (found by `find_weights`), loaded strictly into the reference's MSC module."""
        path = find_weights(checkpoint, WEIGHTS_FILE, WEIGHTS_URL, what="the DeepLabV2 COCO-Stuff segmenter")
        state = read_state_dict(path)
        model = deeplabv2_resnet101_msc(N_CLASSES)
        load_into(model, state, path)
        segmenter = cls(model, device)
        segmenter.weight_files = [path]
        return segmenter

    def preprocess(self, images: Tensor) -> Tensor:
        """RGB [0, 1] -> the reference's network input: BGR pixel values minus the mean, float32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape B x 3 x H x W, got {tuple(images.shape)}")
        if min(images.shape[-2:]) < 2:  # the 0.5 scale would have a side of 0, as in the reference
            raise ValueError(f"images need sides of at least 2 pixels, got {tuple(images.shape[-2:])}")
        pixels = (images.to(self.device, torch.float32) * 255).round().flip(1)  # RGB -> BGR
        return (pixels.double() - self._mean).float()  # numpy: float32 image -= float64 mean

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """The MSC-fused logits B x 182 x h x w at the scale-1 logits' size (about 1/8 of the input's), in eval
        mode, with IEEE fp32 convs."""
        was_training = self.model.training
        self.model.eval()
        try:
            with ieee_fp32_convs():
                return self.model(self.preprocess(images))
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def predict(self, images: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """int64 class ids 0..181, B x h x w at `size` (default: the input size), on the images' device."""
        size = tuple(size) if size is not None else tuple(images.shape[-2:])
        logits = F.interpolate(self.logits(images), size=size, mode="bilinear", align_corners=False)
        return F.softmax(logits, dim=1).argmax(1).to(images.device)
