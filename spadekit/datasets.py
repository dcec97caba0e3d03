"""The paper's four datasets, one row each: the label space, the official SPADE code's configuration of it
(geometry and data defaults, `--dataset_mode`) and the segmenter that scores it in the paper's Table 1.

The label spaces are built in `spadekit.data.labelspaces`, the official configurations read by
`spadekit.nvlabs.configs` and `spadekit.nvlabs.importer` (the bench segmenter); the facts live here only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spadekit.data.labelspaces import ade20k_facts, cityscapes_facts, coco_stuff_facts
from spadekit.data.manifest import DatasetFacts


def _ade20k_outdoor_facts() -> DatasetFacts:
    return ade20k_facts().model_copy(update={"name": "ade20k-outdoor"})


@dataclass(frozen=True)
class PaperDataset:
    name: str  # as in the shards' facts
    facts: Callable[[], DatasetFacts]  # the label space, channel for channel as the official code's
    segmenter: str  # the evaluation segmenter plugin of Table 1 (Sec. 4, "Performance metrics")
    official: bool = True  # an official `--dataset_mode` of its own (ADE20K-outdoor is a subset of ade20k's)
    # The official TrainOptions defaults of its --dataset_mode:
    crop_size: int = 256
    aspect_ratio: float = 1.0
    num_upsampling_layers: str = "normal"
    preprocess: str = "resize_and_crop"
    load_size: int = 286


PAPER_DATASETS: dict[str, PaperDataset] = {row.name: row for row in (
    PaperDataset("coco", coco_stuff_facts, "deeplabv2"),
    PaperDataset("ade20k", ade20k_facts, "upernet"),
    PaperDataset("ade20k-outdoor", _ade20k_outdoor_facts, "upernet", official=False),
    PaperDataset("cityscapes", cityscapes_facts, "drn", crop_size=512, aspect_ratio=2.0,
                 num_upsampling_layers="more", preprocess="fixed", load_size=512),
)}
OFFICIAL_DATASETS = tuple(name for name, row in PAPER_DATASETS.items() if row.official)
