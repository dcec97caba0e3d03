"""Segmentation scores against values worked out by hand on tiny label maps."""

from __future__ import annotations

import math

import pytest
import torch

from spadekit.bench.scores import ConfusionMatrix, mean_iou, pixel_accuracy

IGNORE = 255
# 5 classes. Class 3 appears only in the prediction; class 4 only where the ground truth is ignored, so
# it is absent from both as far as the scores go.
TARGET = torch.tensor([[0, 0, 1, IGNORE, 2], [1, 1, 2, IGNORE, 2]])
PREDICTION = torch.tensor([[0, 1, 1, 4, 3], [1, 2, 2, 4, 2]])
# counted pairs (truth, prediction): (0,0) (0,1) (1,1) (2,3) / (1,1) (1,2) (2,2) (2,2)
EXPECTED_MATRIX = [
    [1, 1, 0, 0, 0],
    [0, 2, 1, 0, 0],
    [0, 0, 2, 1, 0],
    [0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0],
]
# IoU = TP / (row + column - TP): class 0: 1 / (2 + 1 - 1); class 1: 2 / (3 + 3 - 2); class 2: 2 / (3 + 3 - 2);
# class 3: 0 / (0 + 1 - 0); class 4: no pixel in either map -> None, left out of the mean.
EXPECTED_IOU = [0.5, 0.5, 0.5, 0.0, None]


def _matrix(ignore_index: int | None = IGNORE) -> ConfusionMatrix:
    matrix = ConfusionMatrix(5, ignore_index=ignore_index)
    matrix.update(PREDICTION, TARGET)
    return matrix


def test_confusion_matrix_counts_pairs_and_skips_ignored_pixels():
    assert _matrix().matrix.tolist() == EXPECTED_MATRIX


def test_scores_match_hand_computed_values():
    scores = _matrix().scores()
    assert scores.iou == EXPECTED_IOU
    assert scores.miou == pytest.approx((0.5 + 0.5 + 0.5 + 0.0) / 4)  # class 4 excluded, class 3 counts as 0
    assert scores.pixel_accuracy == pytest.approx(5 / 8)  # 1 + 2 + 2 correct of 8 counted pixels
    assert scores.as_dict() == {"miou": scores.miou, "pixel_accuracy": scores.pixel_accuracy}


def test_batches_accumulate_like_one_update():
    matrix = ConfusionMatrix(5, ignore_index=IGNORE)
    for row in range(2):  # one image row per batch, with a batch dimension
        matrix.update(PREDICTION[row][None], TARGET[row][None])
    assert matrix.matrix.tolist() == EXPECTED_MATRIX
    matrix.reset()
    assert int(matrix.matrix.sum()) == 0


def test_perfect_prediction_and_functions_on_a_matrix():
    target = torch.tensor([[0, 1], [1, 2]])
    matrix = ConfusionMatrix(4)
    matrix.update(target, target)
    assert mean_iou(matrix.matrix) == 1.0  # class 3 is absent from both and does not pull the mean down
    assert pixel_accuracy(matrix.matrix) == 1.0


def test_nothing_counted_gives_nan():
    matrix = ConfusionMatrix(3, ignore_index=IGNORE)
    matrix.update(torch.tensor([[0, 1]]), torch.tensor([[IGNORE, IGNORE]]))
    scores = matrix.scores()
    assert scores.iou == [None, None, None]
    assert math.isnan(scores.miou) and math.isnan(scores.pixel_accuracy)


def test_ids_out_of_range_and_shape_mismatch_are_errors():
    with pytest.raises(ValueError, match="target holds class id 255"):
        _matrix(ignore_index=None)  # 255 is not ignored here and is no class
    with pytest.raises(ValueError, match="prediction holds class id 7"):
        ConfusionMatrix(5).update(torch.tensor([7]), torch.tensor([0]))
    with pytest.raises(ValueError, match="differ in shape"):
        ConfusionMatrix(5).update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_counts_on_the_gpu():
    matrix = ConfusionMatrix(5, ignore_index=IGNORE, device="cuda")
    matrix.update(PREDICTION.cuda(), TARGET)  # inputs on any device go to the matrix's
    assert matrix.matrix.device.type == "cuda"
    assert matrix.matrix.tolist() == EXPECTED_MATRIX
