"""Segmentation scores of images (generated or real) against the ground-truth label maps they belong to.

A segmenter plugin labels the images at the label maps' resolution; the prediction is compared with the
ground truth in the segmenter's label space. When the segmenter's classes are the dataset's, that is the
identity. Otherwise the dataset's classes are matched to the segmenter's by name, as for Cityscapes: a
generator trained on the 35 labelIds scored by a segmenter of the 19 trainIds (the benchmark's classes);
dataset classes that the segmenter does not know are ignored, like the don't-care label.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from spadekit.bench.scores import ConfusionMatrix, Scores
from spadekit.data.manifest import DatasetFacts
from spadekit.errors import SpadekitError
from spadekit.segmenter import Segmenter, build_segmenter


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

    def __call__(self, label: Tensor) -> Tensor:
        """Loader labels (don't-care already mapped to label_nc) to the segmenter's ids."""
        return self.lut.to(label.device)[label]

    def describe(self) -> str:
        parts = []
        if self.dontcare_id is not None:
            parts.append(f"don't-care id {self.dontcare_id}")
        if self.unmatched:
            parts.append(f"{len(self.unmatched)} dataset classes the segmenter does not predict "
                         f"({', '.join(self.unmatched[:6])}{', ...' if len(self.unmatched) > 6 else ''})")
        return "; ".join(parts) or "none"


class SegmentationScorer:
    """Accumulates the confusion matrix of one image set; `scores()` gives mIoU, accuracy, per-class IoU."""

    def __init__(self, segmenter: Segmenter, mapping: LabelMapping, device: torch.device):
        self.segmenter, self.mapping = segmenter, mapping
        self.matrix = ConfusionMatrix(mapping.num_classes, ignore_index=mapping.ignore, device=device)

    @torch.no_grad()
    def update(self, images: Tensor, label: Tensor) -> None:
        """uint8 images B x 3 x H x W and loader labels B x 1 x h x w."""
        target = self.mapping(label[:, 0])
        images = images.to(self.matrix.matrix.device).float() / 255
        prediction = self.segmenter.predict(images, size=tuple(target.shape[-2:]))
        self.matrix.update(prediction, target)

    def scores(self) -> Scores:
        return self.matrix.scores()


def load_segmenter(name: str, checkpoint: Path, device: torch.device) -> Segmenter:
    if not Path(checkpoint).is_file():
        raise SpadekitError(f"Segmenter checkpoint {checkpoint} does not exist; train one with "
                            "`spadekit segmenter train SHARDS --out DIR` or fix --segmenter-ckpt.")
    return build_segmenter(name, checkpoint, device=device)
