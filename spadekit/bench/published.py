"""Published scores, set beside the measured ones in the bench report (marked as published, never mixed in).

Keys: (generator plugin, dataset name as in the shards' facts). mIoU and accuracy in %, as the papers print
them. SPADE's paper (Park et al., CVPR 2019) gives Table 1 for SPADE, pix2pixHD and CRN; spadekit's
`pix2pixhd` plugin is the paper's stronger pix2pixHD++ baseline, whose only published scores are Table 3's mIoU.
OASIS (Sushko et al., ICLR 2021) reports FID and mIoU, no pixel accuracy. CLADE (Tan et al., TPAMI 2021) has no
row: its paper's tables could not be checked here, and a number nobody verified is not printed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SPADE_TABLE_1 = "Park et al. 2019, Table 1"
SPADE_TABLE_3 = "Park et al. 2019, Table 3 (mIoU only)"
OASIS_PAPER = "Sushko et al. 2021 (OASIS), FID and mIoU"


@dataclass(frozen=True)
class PublishedScores:
    method: str
    source: str
    miou: float | None  # %
    accuracy: float | None  # %
    fid: float | None

    def as_json(self) -> dict:
        return asdict(self)


def _table_1(method: str, miou: float, accuracy: float, fid: float) -> PublishedScores:
    return PublishedScores(method, SPADE_TABLE_1, miou, accuracy, fid)


def _table_3(method: str, miou: float) -> PublishedScores:
    return PublishedScores(method, SPADE_TABLE_3, miou, None, None)


def _oasis(miou: float, fid: float) -> PublishedScores:
    return PublishedScores("OASIS", OASIS_PAPER, miou, None, fid)


PUBLISHED: dict[tuple[str, str], PublishedScores] = {
    ("spade", "coco"): _table_1("SPADE", 37.4, 67.9, 22.6),
    ("spade", "ade20k"): _table_1("SPADE", 38.5, 79.9, 33.9),
    ("spade", "ade20k-outdoor"): _table_1("SPADE", 30.8, 82.9, 63.3),
    ("spade", "cityscapes"): _table_1("SPADE", 62.3, 81.9, 71.8),
    ("crn", "coco"): _table_1("CRN", 23.7, 40.4, 70.4),
    ("crn", "ade20k"): _table_1("CRN", 22.4, 68.8, 73.3),
    ("crn", "ade20k-outdoor"): _table_1("CRN", 16.5, 68.6, 99.0),
    ("crn", "cityscapes"): _table_1("CRN", 52.4, 77.1, 104.7),
    ("pix2pixhd", "coco"): _table_3("pix2pixHD++", 32.7),
    ("pix2pixhd", "ade20k"): _table_3("pix2pixHD++", 38.3),
    ("pix2pixhd", "cityscapes"): _table_3("pix2pixHD++", 58.8),
    ("oasis", "coco"): _oasis(44.1, 17.0),
    ("oasis", "ade20k"): _oasis(48.8, 28.3),
    ("oasis", "ade20k-outdoor"): _oasis(40.4, 48.6),
    ("oasis", "cityscapes"): _oasis(69.3, 47.7),
}


def published_scores(generator: str, dataset: str) -> PublishedScores | None:
    """The published scores of `generator` on `dataset`, if a paper gives them."""
    return PUBLISHED.get((generator, dataset))
