"""spadekit's segmentation scores against an independent reference: cityscapesscripts' pixel-level evaluation.

Three small hand-made scenes (ground truth as labelIds, predictions as trainIds 0..18) are written as PNG files
laid out as cityscapesscripts expects and scored by `evalPixelLevelSemanticLabeling.evaluateImgLists`; the same
maps, in the trainIds label space (255 = ignored), go through `spadekit.bench.scores.ConfusionMatrix`.

The scenes cover: ignored labelIds (unlabeled, ego vehicle, out of roi, parking), an evaluated class present only
in the predictions (truck: IoU 0 in both), one predicted only over ignored ground truth (train: no IoU in both, since
both leave ignored pixels out of the false positives), and evaluated classes in no map at all (motorcycle, ...).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
from cityscapesscripts.helpers.labels import labels, name2label, trainId2label
from PIL import Image

from spadekit.bench.scores import ConfusionMatrix, Scores

HEIGHT, WIDTH = 16, 32
NUM_CLASSES = 19
IGNORE = 255
CITY = "testcity"

# labelId -> trainId (cityscapesscripts marks ignored trainIds as 255 or -1), and trainId -> labelId.
LABEL_TO_TRAIN = np.full(256, IGNORE, dtype=np.uint8)
for _label in labels:
    if _label.id >= 0 and 0 <= _label.trainId < IGNORE:
        LABEL_TO_TRAIN[_label.id] = _label.trainId
TRAIN_TO_LABEL = np.array([trainId2label[t].id for t in range(NUM_CLASSES)], dtype=np.uint8)
EVALUATED_LABEL_IDS = [label.id for label in labels if label.id >= 0 and not label.ignoreInEval]


def label_id(name: str) -> int:
    return name2label[name].id


def train_id(name: str) -> int:
    return name2label[name].trainId


def fill(ground_truth: np.ndarray, rows: slice, cols: slice, name: str) -> None:
    ground_truth[rows, cols] = label_id(name)


def faithful_prediction(ground_truth: np.ndarray) -> np.ndarray:
    """trainIds of a perfect segmenter; where the ground truth is ignored it says 'road'."""
    prediction = LABEL_TO_TRAIN[ground_truth]
    prediction[prediction == IGNORE] = train_id("road")
    return prediction


def street_scene() -> tuple[np.ndarray, np.ndarray]:
    """Sky, buildings, trees, a pole, a car on the road, the ego vehicle at the bottom."""
    truth = np.empty((HEIGHT, WIDTH), dtype=np.uint8)
    fill(truth, slice(0, 5), slice(None), "sky")
    fill(truth, slice(5, 10), slice(0, 20), "building")
    fill(truth, slice(5, 10), slice(20, None), "vegetation")
    fill(truth, slice(10, 14), slice(None), "road")
    fill(truth, slice(10, 14), slice(0, 4), "sidewalk")
    fill(truth, slice(3, 14), slice(16, 17), "pole")
    fill(truth, slice(9, 13), slice(22, 30), "car")
    fill(truth, slice(14, None), slice(None), "ego vehicle")
    prediction = faithful_prediction(truth)
    prediction[9:13, 26:30] = train_id("truck")  # the back of the car: truck is in no ground truth at all
    prediction[4, :] = train_id("building")  # the skyline one row too high (the pole's pixel included)
    prediction[3, 16] = train_id("sky")  # the top of the pole
    prediction[5:7, 16] = train_id("building")
    prediction[14:, :] = train_id("train")  # over the ego vehicle only: ignored, so no false positive
    return truth, prediction


def pedestrian_scene() -> tuple[np.ndarray, np.ndarray]:
    """A person on the sidewalk, a traffic sign, a parking lot, unlabeled and out-of-roi pixels."""
    truth = np.empty((HEIGHT, WIDTH), dtype=np.uint8)
    fill(truth, slice(0, 4), slice(None), "out of roi")
    fill(truth, slice(4, 9), slice(None), "building")
    fill(truth, slice(5, 7), slice(10, 13), "traffic sign")
    fill(truth, slice(9, None), slice(None), "road")
    fill(truth, slice(9, None), slice(24, None), "sidewalk")
    fill(truth, slice(12, None), slice(8, 16), "parking")  # a real class the benchmark ignores
    fill(truth, slice(13, None), slice(0, 6), "unlabeled")
    fill(truth, slice(6, 14), slice(26, 29), "person")
    prediction = faithful_prediction(truth)
    prediction[0:4, :] = train_id("sky")  # over out of roi: ignored
    prediction[6:9, 26:29] = train_id("rider")  # the upper body
    prediction[9:, 24:26] = train_id("road")  # the sidewalk's edge
    prediction[5:7, 10] = train_id("pole")
    prediction[12:, 8:16] = train_id("car")  # parked cars over the ignored parking lot
    return truth, prediction


def cyclist_scene() -> tuple[np.ndarray, np.ndarray]:
    """A rider on a bicycle between terrain and a fence; the prediction gets 15% random noise."""
    truth = np.empty((HEIGHT, WIDTH), dtype=np.uint8)
    fill(truth, slice(0, 6), slice(None), "vegetation")
    fill(truth, slice(6, 10), slice(0, 16), "terrain")
    fill(truth, slice(6, 10), slice(16, None), "fence")
    fill(truth, slice(10, 15), slice(None), "road")
    fill(truth, slice(15, None), slice(None), "unlabeled")
    fill(truth, slice(5, 11), slice(12, 15), "rider")
    fill(truth, slice(9, 14), slice(10, 17), "bicycle")
    prediction = faithful_prediction(truth)
    rng = np.random.default_rng(0)
    noisy = rng.random((HEIGHT, WIDTH)) < 0.15
    # Noise only among classes of the scenes, so that train, motorcycle, bus, wall, ... stay absent.
    scene_classes = [train_id(name) for name in ("road", "vegetation", "terrain", "fence", "rider", "bicycle")]
    prediction[noisy] = rng.choice(scene_classes, size=int(noisy.sum()))
    return truth, prediction


SCENES = [street_scene(), pedestrian_scene(), cyclist_scene()]


def write_cityscapes_layout(root: Path) -> list[Path]:
    """gtFine/val/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png and results/<city>_<seq>_<frame>_pred.png."""
    (root / "gtFine" / "val" / CITY).mkdir(parents=True)
    (root / "results").mkdir()
    ground_truth_files = []
    for frame, (truth, prediction) in enumerate(SCENES):
        stem = f"{CITY}_000000_{frame:06d}"
        ground_truth_file = root / "gtFine" / "val" / CITY / f"{stem}_gtFine_labelIds.png"
        Image.fromarray(truth).save(ground_truth_file)
        Image.fromarray(TRAIN_TO_LABEL[prediction]).save(root / "results" / f"{stem}_pred.png")
        ground_truth_files.append(ground_truth_file)
    return ground_truth_files


def cityscapes_evaluation(root: Path) -> dict:
    """cityscapesscripts' result dict, predictions found by its own `getPrediction` under CITYSCAPES_RESULTS."""
    ground_truth_files = [str(path) for path in write_cityscapes_layout(root)]
    args = copy.copy(cs_eval.args)  # the module's settings, left untouched for anyone else
    args.evalInstLevelScore = False  # nIoU needs *_instanceIds.png
    # Not its evalPixelAccuracy: that per-image statistic counts ignored pixels (`np.in1d(..., invert=True)`)
    # and wrong ones as "correct", and np.in1d is gone from NumPy 2.4; the accuracy is taken from confMatrix.
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.exportFile = str(root / "evaluationResults" / "resultPixelLevelSemanticLabeling.json")
    args.quiet = True
    args.colorized = False
    args.predictionPath = None
    args.predictionWalk = None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYSCAPES_DATASET", str(root))
        patch.setenv("CITYSCAPES_RESULTS", str(root / "results"))
        prediction_files = [cs_eval.getPrediction(args, path) for path in ground_truth_files]
        return cs_eval.evaluateImgLists(prediction_files, ground_truth_files, args)


def spadekit_matrix() -> ConfusionMatrix:
    matrix = ConfusionMatrix(NUM_CLASSES, ignore_index=IGNORE)
    for truth, prediction in SCENES:
        matrix.update(torch.from_numpy(prediction), torch.from_numpy(LABEL_TO_TRAIN[truth]))
    return matrix


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    return cityscapes_evaluation(tmp_path_factory.mktemp("cityscapes"))


@pytest.fixture(scope="module")
def scores() -> Scores:
    return spadekit_matrix().scores()


def test_label_table_ignores_exactly_the_pixels_without_a_train_id():
    """The comparison rests on this: cityscapesscripts skips `ignoreInEval` labels, spadekit skips trainId 255."""
    for label in labels:
        if label.id >= 0:
            assert label.ignoreInEval == (LABEL_TO_TRAIN[label.id] == IGNORE), label.name


def test_scenes_cover_the_edge_cases():
    truths = np.stack([LABEL_TO_TRAIN[truth] for truth, _ in SCENES])
    predictions = np.stack([prediction for _, prediction in SCENES])
    evaluated = truths != IGNORE
    assert train_id("truck") in predictions[evaluated] and train_id("truck") not in truths
    assert train_id("train") in predictions and train_id("train") not in predictions[evaluated]
    assert train_id("train") not in truths
    assert train_id("motorcycle") not in predictions and train_id("motorcycle") not in truths
    assert (~evaluated).any() and len(np.unique(truths[evaluated])) >= 10


def test_confusion_matrices_agree(reference):
    reference_matrix = np.array(reference["confMatrix"], dtype=np.int64)
    # Rows of ignored labelIds are spadekit's dropped pixels; columns of them are never predicted from trainIds.
    evaluated_block = reference_matrix[np.ix_(TRAIN_TO_LABEL, TRAIN_TO_LABEL)]
    assert spadekit_matrix().matrix.numpy().tolist() == evaluated_block.tolist()
    assert reference_matrix[EVALUATED_LABEL_IDS].sum() == evaluated_block.sum()


def test_per_class_iou_agrees(reference, scores):
    for train, iou in enumerate(scores.iou):
        name = trainId2label[train].name
        reference_iou = reference["classScores"][name]
        if math.isnan(reference_iou):
            assert iou is None, name
        else:
            assert iou == pytest.approx(reference_iou, rel=1e-12, abs=0), name
    # The cases the scenes were built for: predicted only (0), predicted only over ignored pixels and absent (none).
    assert scores.iou[train_id("truck")] == 0.0
    assert scores.iou[train_id("train")] is None and scores.iou[train_id("motorcycle")] is None
    assert 0 < sum(iou is None for iou in scores.iou) < NUM_CLASSES


def test_mean_iou_agrees(reference, scores):
    assert scores.miou == pytest.approx(reference["averageScoreClasses"], rel=1e-9)
    assert 0 < scores.miou < 1


def test_pixel_accuracy_agrees_with_the_reference_confusion_matrix(reference, scores):
    reference_matrix = np.array(reference["confMatrix"], dtype=np.int64)
    evaluated_rows = reference_matrix[EVALUATED_LABEL_IDS]  # pixels whose ground truth counts
    correct = sum(int(reference_matrix[i, i]) for i in EVALUATED_LABEL_IDS)
    assert scores.pixel_accuracy == pytest.approx(correct / int(evaluated_rows.sum()), rel=1e-12)
    assert 0 < scores.pixel_accuracy < 1
