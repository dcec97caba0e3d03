"""Segmentation scores of images (generated or real) against the ground-truth label maps they belong to.

A segmenter plugin labels the images at the label maps' resolution; the prediction is compared with the
ground truth in the segmenter's label space. When the segmenter's classes are the dataset's, that is the
identity. Otherwise the dataset's classes are matched to the segmenter's by name, as for Cityscapes: a
generator trained on the 35 labelIds scored by a segmenter of the 19 trainIds (the benchmark's classes);
dataset classes that the segmenter does not know are ignored, like the don't-care label.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from spadekit.bench.scores import ConfusionMatrix, Scores
from spadekit.data.manifest import DatasetFacts
from spadekit.errors import SpadekitError
from spadekit.fileio import sha256_file
from spadekit.segmenter import Segmenter


class LabelMapping:
    """Dataset class ids (and the loader's don't-care id, `label_nc`) to segmenter class ids or `ignore`."""

    def __init__(self, dataset: DatasetFacts, segmenter: DatasetFacts):
        self.num_classes = segmenter.label_nc
        self.ignore = segmenter.label_nc  # never a class id of the segmenter
        index = {name: i for i, name in enumerate(segmenter.class_names)}
        lut = [index.get(name, self.ignore) for name in dataset.class_names] + [self.ignore]  # + don't-care
        self.lut = torch.tensor(lut, dtype=torch.int64)
        self.unmatched = [name for name in dataset.class_names if name not in index]
        if len(self.unmatched) == len(dataset.class_names):
            raise SpadekitError(
                f"The segmenter's classes ({', '.join(segmenter.class_names[:4])}, ...) share no name with the "
                f"dataset's ({', '.join(dataset.class_names[:4])}, ...); use a segmenter trained on this dataset "
                "(`spadekit segmenter train SHARDS --out DIR`)."
            )
        self.dontcare_id = dataset.dontcare_id
        self.dataset, self.segmenter = dataset, segmenter

    def __call__(self, label: Tensor) -> Tensor:
        """Loader labels (don't-care already mapped to label_nc) to the segmenter's ids."""
        return self.lut.to(label.device)[label]

    def describe_matching(self) -> str:
        dataset, segmenter = self.dataset, self.segmenter
        if dataset.class_names == segmenter.class_names:
            return f"identity ({segmenter.label_nc} classes)"
        matched = dataset.label_nc - len(self.unmatched)
        return (f"by class name: {matched} of the {dataset.label_nc} {dataset.name} classes onto the segmenter's "
                f"{segmenter.label_nc} ({segmenter.name})")

    def describe(self) -> str:
        parts = []
        if self.dontcare_id is not None:
            parts.append(f"don't-care id {self.dontcare_id}")
        if self.unmatched:
            parts.append(f"{len(self.unmatched)} dataset classes the segmenter does not predict "
                         f"({', '.join(self.unmatched[:6])}{', ...' if len(self.unmatched) > 6 else ''})")
        return "; ".join(parts) or "none"


class SegmentationScorer:
    """Accumulates the confusion matrix of one image set; `scores()` gives mIoU, accuracy, per-class IoU.
    With `resolution` (width, height), images are resized to it (bilinear) before they are segmented; the
    prediction is made at the ground truth's size either way."""

    def __init__(self, segmenter: Segmenter, mapping: LabelMapping, device: torch.device,
                 resolution: tuple[int, int] | None = None):
        self.segmenter, self.mapping, self.resolution = segmenter, mapping, resolution
        self.matrix = ConfusionMatrix(mapping.num_classes, ignore_index=mapping.ignore, device=device)

    @torch.no_grad()
    def update(self, images: Tensor, label: Tensor) -> None:
        """uint8 images B x 3 x H x W and loader labels B x 1 x h x w."""
        target = self.mapping(label[:, 0])
        images = images.to(self.matrix.matrix.device).float() / 255
        if self.resolution is not None:
            width, height = self.resolution
            images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
        prediction = self.segmenter.predict(images, size=tuple(target.shape[-2:]))
        self.matrix.update(prediction, target)

    def scores(self) -> Scores:
        return self.matrix.scores()


def segmenter_files_sha256(segmenter: Segmenter, checkpoint: Path | None) -> str:
    """The sha256 of the weights the segmenter loaded (`weight_files`, else `checkpoint`); over the files'
    digests, in order, when there are several."""
    files = list(getattr(segmenter, "weight_files", None) or [checkpoint])
    digests = [sha256_file(path) for path in files]
    return digests[0] if len(digests) == 1 else hashlib.sha256("\n".join(digests).encode()).hexdigest()
