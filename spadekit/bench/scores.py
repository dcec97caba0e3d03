"""Segmentation scores: a confusion matrix accumulated over batches, per-class IoU, mIoU, pixel accuracy.

The matrix counts pixels: `matrix[t, p]` is the number of pixels of ground-truth class t predicted as class p.
Pixels whose ground truth is the ignore index (the dataset's don't-care id) are not counted at all.

The rules, those of the usual semantic-segmentation benchmarks (the Cityscapes evaluation script,
mmsegmentation), over all pixels accumulated so far (not an average of per-image scores):

- IoU of class c = TP / (TP + FP + FN), i.e. matrix[c, c] / (row c + column c - matrix[c, c]);
- a class absent from both the ground truth and the prediction (TP + FP + FN = 0) has no IoU (NaN) and is
  left out of the mean; a class present in only one of them has IoU 0 and counts;
- mIoU = the mean of the IoUs that are not NaN (NaN when every class is absent);
- pixel accuracy = correctly predicted pixels / counted pixels (NaN when no pixel was counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# The metric keys, one name each, as bench's scores.json and the report use them.
MIOU = "miou"
ACCURACY = "accuracy"  # pixel accuracy
FID = "fid"
KID = "kid"
KID_STD = "kid_std"
SEGMENTER_ACCURACY = "pixel_accuracy"  # ACCURACY under the name saved segmenter checkpoints' "scores" keep


@dataclass(frozen=True)
class Scores:
    """The scores of one confusion matrix; `iou[c]` is None for a class absent from both maps."""

    iou: list[float | None]
    miou: float
    pixel_accuracy: float

    def as_dict(self) -> dict[str, float]:
        """The scores as a segmenter checkpoint saves them."""
        return {MIOU: self.miou, SEGMENTER_ACCURACY: self.pixel_accuracy}

    def metrics(self) -> dict[str, float]:
        """The scores under bench's metric keys."""
        return {MIOU: self.miou, ACCURACY: self.pixel_accuracy}


class ConfusionMatrix:
    """Pixel counts of (ground truth, prediction) pairs, accumulated with `update` on the labels' device."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, device: torch.device | str = "cpu"):
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: Tensor, target: Tensor) -> None:
        """Count one batch: integer tensors of the same shape (any shape) holding class ids."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
        prediction = prediction.to(self.matrix.device).reshape(-1).long()
        target = target.to(self.matrix.device).reshape(-1).long()
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            prediction, target = prediction[keep], target[keep]
        if target.numel() == 0:
            return
        self._check_range(prediction, "prediction")
        self._check_range(target, "target")
        pairs = target * self.num_classes + prediction
        counts = torch.bincount(pairs, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def _check_range(self, ids: Tensor, name: str) -> None:
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"{name} holds class id {bad}, outside 0..{self.num_classes - 1} (and not ignored)")

    def reset(self) -> None:
        self.matrix.zero_()

    def scores(self) -> Scores:
        return scores_from_matrix(self.matrix)


def iou_per_class(matrix: Tensor) -> Tensor:
    """float64 IoU of every class; NaN where the class is absent from both ground truth and prediction."""
    matrix = matrix.double()
    hits = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - hits
    return torch.where(union > 0, hits / union.clamp(min=1), torch.full_like(hits, float("nan")))


def mean_iou(matrix: Tensor) -> float:
    """Mean IoU over the classes present in the ground truth or the prediction; NaN if there are none."""
    iou = iou_per_class(matrix)
    return float(iou.nanmean()) if not iou.isnan().all() else float("nan")


def pixel_accuracy(matrix: Tensor) -> float:
    """Correct pixels / counted pixels; NaN when nothing was counted."""
    total = int(matrix.sum())
    return float(matrix.diagonal().sum()) / total if total else float("nan")


def scores_from_matrix(matrix: Tensor) -> Scores:
    iou = [None if math.isnan(v) else v for v in iou_per_class(matrix).tolist()]
    return Scores(iou=iou, miou=mean_iou(matrix), pixel_accuracy=pixel_accuracy(matrix))
