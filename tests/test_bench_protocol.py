"""Table 1's protocol: label matching per dataset (ADE20K's "other" ignored as the CSAIL evaluation ignores it),
the protocol's fields, published scores beside measured ones."""

from __future__ import annotations

import numpy as np
import torch

from spadekit.bench.protocol import Protocol
from spadekit.bench.published import published_scores
from spadekit.bench.scores import ConfusionMatrix
from spadekit.bench.segmentation import LabelMapping
from spadekit.data.labelspaces import ade20k_150_facts, ade20k_facts, coco_stuff_facts


def _csail_intersection_and_union(prediction: np.ndarray, annotation: np.ndarray, num_class: int):
    """CSAIL's scoring, restated: prediction 0..149 and annotation - 1 both shifted up by one, prediction
    pixels on annotation 0 ("other") zeroed, then histograms over 1..num_class."""
    pred, lab = prediction.astype(np.int64) + 1, annotation.astype(np.int64)  # (annotation - 1) + 1
    pred = pred * (lab > 0)
    hits = pred * (pred == lab)
    intersection = np.histogram(hits, bins=num_class, range=(1, num_class))[0]
    area_pred = np.histogram(pred, bins=num_class, range=(1, num_class))[0]
    area_lab = np.histogram(lab, bins=num_class, range=(1, num_class))[0]
    return intersection, area_pred + area_lab - intersection


def test_ade20k_other_is_ignored_as_the_csail_evaluation_ignores_it():
    rng = np.random.default_rng(0)
    annotation = rng.integers(0, 151, size=(4, 60, 80))  # ADE20K annotation values, 0 = "other"
    annotation[:, :20] = 0  # plenty of "other"
    prediction = np.where(rng.random(annotation.shape) < 0.5, np.maximum(annotation - 1, 0),
                          rng.integers(0, 150, size=annotation.shape))  # the segmenter's 0..149
    mapping = LabelMapping(ade20k_facts(), ade20k_150_facts())
    assert mapping.unmatched == ["other"]
    matrix = ConfusionMatrix(mapping.num_classes, ignore_index=mapping.ignore)
    matrix.update(torch.from_numpy(prediction), mapping(torch.from_numpy(annotation)))
    scores = matrix.scores()

    intersection, union = _csail_intersection_and_union(prediction, annotation, 150)
    assert np.allclose([iou for iou in scores.iou], intersection / union)
    valid = annotation > 0  # CSAIL's accuracy: pixels with annotation - 1 >= 0
    assert np.isclose(scores.pixel_accuracy, (prediction == annotation - 1)[valid].sum() / valid.sum())
    # a prediction on "other" pixels changes nothing
    other = prediction.copy()
    other[annotation == 0] = 7
    again = ConfusionMatrix(mapping.num_classes, ignore_index=mapping.ignore)
    again.update(torch.from_numpy(other), mapping(torch.from_numpy(annotation)))
    assert again.scores() == scores


def test_coco_stuff_matches_itself_and_ignores_255():
    facts = coco_stuff_facts()
    mapping = LabelMapping(facts, facts)
    assert mapping.describe_matching() == "identity (182 classes)"
    assert mapping.describe() == "don't-care id 255"
    assert mapping(torch.tensor([0, 181, 182])).tolist() == [0, 181, mapping.ignore]  # 182: the loader's 255


def test_a_protocol_saved_before_the_new_fields_still_reads():
    old = {"dataset": "coco", "shards_sha256": "0" * 64, "split": "val", "num_images": 2, "resolution": [64, 64],
           "latent": "none", "seed": 0, "label_space": "coco", "segmenter": None, "segmenter_sha256": None,
           "segmenter_classes": None, "ignored": None, "fid_backend": "x", "inception_sha256": None,
           "kid_subsets": 1, "kid_subset_size": 2}
    protocol = Protocol.model_validate(old)
    rows = dict(protocol.rows())
    assert rows["generator weights"] == "EMA of the generator"
    assert rows["segmented at"].startswith("64x64 (as generated)")


def test_table_1_rows_are_published_for_the_papers_methods_and_datasets():
    spade = published_scores("spade", "cityscapes")
    assert (spade.miou, spade.accuracy, spade.fid) == (62.3, 81.9, 71.8) and "Table 1" in spade.source
    assert published_scores("crn", "coco").fid == 70.4
    assert published_scores("pix2pixhd", "ade20k").accuracy is None  # pix2pixHD++: Table 3's mIoU only
    assert published_scores("spade", "toyscapes") is None
