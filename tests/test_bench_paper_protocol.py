"""`spadekit bench` under Table 1's protocol on a Cityscapes-layout run: the paper recipe's segmenter (DRN-D-105,
its published file's layout with random weights), the labelIds scored through the trainIds, the raw generator,
and the published SPADE row beside the measured one. The command runs in-process (tests/conftest.py `cli`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spadekit.config import load_recipe
from spadekit.data.prepare import prepare
from spadekit.train.loop import TrainJob, train
from spadekit_plugins.drn.network import DRNSeg
from tests.conftest import REPO
from tests.test_cityscapes import _write

TINY_CITYSCAPES = {
    "data.load_size": 64, "data.crop_size": 64, "data.batch_size": 2, "data.num_workers": 0,
    "model.ngf": 4, "model.num_upsampling_layers": "normal", "discriminator.ndf": 8, "loss.lambda_vgg": 0.0,
    "train.epochs": 1, "train.decay_epochs": 0, "train.max_steps": 1, "train.log_every": 1,
    "train.sample_every": 1, "train.checkpoint_every": 1,
}


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory) -> dict[str, Path]:
    """A Cityscapes-layout dataset, a one-step run of recipes/spade_cityscapes.toml, and a DRN checkpoint."""
    root = tmp_path_factory.mktemp("paper")
    src = root / "cityscapes"
    for i, (split, city) in enumerate([("train", "aachen"), ("train", "bremen"), ("val", "frankfurt"),
                                       ("val", "lindau")]):
        _write(src, split, city, f"{city}_000000_000019", i)
    prepare("cityscapes", root / "shards", src=src)
    recipe = load_recipe(REPO / "recipes" / "spade_cityscapes.toml",
                         {**TINY_CITYSCAPES, "data.shards": str(root / "shards")})
    train(TrainJob(recipe, root / "run"))
    torch.manual_seed(0)
    torch.save(DRNSeg().state_dict(), root / "drn-d-105_ms_cityscapes.pth")
    return {"run": root / "run", "drn": root / "drn-d-105_ms_cityscapes.pth", "root": root}


@pytest.fixture()
def cache(tmp_path) -> dict[str, str]:
    return {"SPADEKIT_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path / "torch")}


def test_the_paper_recipe_scores_with_drn_on_trainids_and_the_raw_generator(paper_run, cache, tmp_path, cli):
    proc = cli("bench", str(paper_run["run"]), "--segmenter-ckpt", str(paper_run["drn"]),
               "--json", str(tmp_path / "out.json"), env=cache)
    result = json.loads((tmp_path / "out.json").read_text())["runs"][0]
    protocol = result["protocol"]
    assert protocol["segmenter"] == "drn" and protocol["segmenter_classes"] == 19
    assert "single-scale" in protocol["segmenter_procedure"]
    assert protocol["label_matching"] == "by class name: 19 of the 35 cityscapes classes onto the segmenter's 19 " \
                                         "(cityscapes)"
    assert "16 dataset classes the segmenter does not predict (unlabeled" in protocol["ignored"]
    assert protocol["generator_weights"] == "raw" and protocol["segment_resolution"] is None
    assert protocol["resolution"] == [64, 32]
    assert result["scores"]["miou"] is not None
    assert result["published"] == {"method": "SPADE", "source": "Park et al. 2019, Table 1", "miou": 62.3,
                                   "accuracy": 81.9, "fid": 71.8}
    for text in ("drn (19 classes)", "the trained generator, no EMA", "64x32 (as generated)",
                 "by class name: 19 of the 35", "SPADE (published)", "62.3"):
        assert text in proc.stdout, text


def test_ema_weights_and_an_upsampled_segmentation_are_protocol_fields(paper_run, cache, tmp_path, cli):
    cli("bench", str(paper_run["run"]), "--segmenter-ckpt", str(paper_run["drn"]), "--json",
        str(tmp_path / "out.json"), "--set", "bench.generator_weights=ema", "--set",
        "bench.segment_resolution=[128, 64]", env=cache)
    protocol = json.loads((tmp_path / "out.json").read_text())["runs"][0]["protocol"]
    assert protocol["generator_weights"] == "ema" and protocol["segment_resolution"] == [128, 64]


def test_without_the_published_drn_file_miou_is_not_computed_and_says_where_to_get_it(paper_run, cache, tmp_path, cli):
    cli("bench", str(paper_run["run"]), "--json", str(tmp_path / "out.json"), env=cache)
    result = json.loads((tmp_path / "out.json").read_text())["runs"][0]
    assert result["scores"]["miou"] is None
    reason = result["not_computed"]["miou"]
    assert "drn-d-105_ms_cityscapes.pth" in reason and "torch hub cache" in reason and "http" in reason
    proc = cli("bench", str(paper_run["run"]), "--segmenter-ckpt", str(tmp_path / "none.pth"), env=cache,
               check=False)
    assert proc.returncode == 1 and "none.pth" in proc.stderr and "Traceback" not in proc.stderr
