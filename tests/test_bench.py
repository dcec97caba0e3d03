"""`spadekit bench` end to end on toyscapes runs, with an Inception weights file and a segmenter made here.

The Inception network is torch-fidelity's own inception-v3-compat architecture, randomly initialized and
saved: the real weights cannot be downloaded here, and the test needs only the same network on both sides.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity
from PIL import Image
from torch import nn

from spadekit.bench.segmentation import LabelMapping
from spadekit.data.export import export
from spadekit.data.manifest import DatasetFacts
from spadekit.errors import SpadekitError
from spadekit.fileio import sha256_file
from spadekit.segmenter import build_segmenter
from spadekit.train.loop import TrainJob, train
from tests.conftest import run_cli, tiny_recipe


def _random_inception(path: Path) -> Path:
    """torch-fidelity's FID Inception with random (He-initialized) weights, saved as its weights file."""
    from torch_fidelity import feature_extractor_inceptionv3 as module

    cls = module.FeatureExtractorInceptionV3
    load, fetch = cls.load_state_dict, module.load_state_dict_from_url
    cls.load_state_dict = lambda self, state, *args, **kwargs: None  # keep the random initialization
    module.load_state_dict_from_url = lambda *args, **kwargs: None  # and never reach for the network
    try:
        torch.manual_seed(0)
        network = cls("inception-v3-compat", ["2048"])
    finally:
        cls.load_state_dict, module.load_state_dict_from_url = load, fetch
    for layer in network.modules():
        if isinstance(layer, nn.Conv2d):  # PyTorch's default init shrinks activations to ~0 over 90 layers
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def setup(tiny_run, toy_shards, tmp_path_factory):
    """Two short runs (2 and 4 steps), a segmenter checkpoint, Inception weights, the real val images."""
    root = tmp_path_factory.mktemp("bench")
    # run2 is the session's 2-step run; run4 resumes a copy of it to step 4, bit for bit the straight 4-step run
    # (tests/test_train.py: test_resume_continues_bit_exact)
    runs = [Path(shutil.copytree(tiny_run, root / f"run{steps}")) for steps in (2, 4)]
    train(TrainJob(tiny_recipe(toy_shards, **{"train.max_steps": 4}), runs[1], resume=True))
    torch.manual_seed(0)
    facts = DatasetFacts.model_validate(json.loads((runs[0] / "run.json").read_text())["facts"])
    segmenter = build_segmenter("smp", options={"arch": "unet", "encoder": "resnet18", "input_size": 64},
                                facts=facts)
    segmenter.save(root / "segmenter.pt")
    export(toy_shards, root / "export", ["val"])  # what `spadekit data export SHARDS --out EXPORT --split val` does
    return {"runs": runs, "segmenter": root / "segmenter.pt", "inception": _random_inception(root / "incep.pth"),
            "real": root / "export" / "val", "root": root}


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    env = {"SPADEKIT_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path / "torch")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return tmp_path / "cache"


def test_bench_fid_and_kid_equal_torch_fidelity_on_the_same_images(setup, cache, tmp_path, cli):
    run = setup["runs"][0]
    out = tmp_path / "scores.json"
    cli("bench", str(run), "--segmenter-ckpt", str(setup["segmenter"]), "--fid-weights", str(setup["inception"]),
        "--json", str(out))
    result = json.loads(out.read_text())["runs"][0]
    generated = run / "bench" / "val" / "images"
    assert len(list(generated.glob("*.png"))) == 8 and result["not_computed"] == {}
    reference = torch_fidelity.calculate_metrics(
        input1=str(generated), input2=str(setup["real"] / "images"), fid=True, kid=True, kid_subset_size=8,
        feature_extractor_weights_path=str(setup["inception"]), cuda=False, cache=False, save_cpu_ram=True,
        verbose=False)
    assert result["scores"]["fid"] > 1  # a random Inception still separates 2-step fakes from real images
    assert result["scores"]["fid"] == pytest.approx(reference["frechet_inception_distance"], rel=1e-6)
    assert result["scores"]["kid"] == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-6)
    protocol = result["protocol"]
    assert protocol["inception_sha256"] == sha256_file(setup["inception"])
    assert protocol["segmenter_sha256"] == sha256_file(setup["segmenter"])
    assert protocol["resolution"] == [64, 64] and protocol["num_images"] == 8 and protocol["latent"] == "encode"
    assert protocol["fid_backend"].startswith(f"torch-fidelity {torch_fidelity.__version__}")


def test_bench_miou_equals_an_independent_count_on_the_saved_images(setup, cache, tmp_path, cli):
    run = setup["runs"][1]
    cli("bench", str(run), "--segmenter-ckpt", str(setup["segmenter"]))
    result = json.loads((run / "bench" / "val" / "scores.json").read_text())["runs"][0]
    segmenter = build_segmenter("smp", setup["segmenter"])
    hits, union, correct, total = np.zeros(9), np.zeros(9), 0, 0
    for path in sorted((run / "bench" / "val" / "images").glob("*.png")):
        key = path.stem.split("_", 1)[1]
        image = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1)[None].float() / 255
        predicted = segmenter.predict(image)[0].numpy()
        truth = np.asarray(Image.open(setup["real"] / "labels" / f"{key}.png"))
        for c in range(9):
            hits[c] += np.sum((predicted == c) & (truth == c))
            union[c] += np.sum((predicted == c) | (truth == c))
        correct, total = correct + np.sum(predicted == truth), total + truth.size
    present = union > 0
    assert result["scores"]["miou"] == pytest.approx(np.mean(hits[present] / union[present]), rel=1e-9)
    assert result["scores"]["accuracy"] == pytest.approx(correct / total, rel=1e-9)
    assert [result["per_class_iou"][name] is None for name in result["per_class_iou"]] == list(~present)
    assert result["real_images"]["miou"] >= 0  # the segmenter on the real images, for reference


def test_the_same_seed_gives_the_same_images_and_another_latent_other_ones(setup, cache, cli):
    run = setup["runs"][1]
    images = run / "bench" / "val" / "images"

    def generated(*args: str) -> list[np.ndarray]:
        cli("bench", str(run), "--num", "4", *args)
        return [np.asarray(Image.open(p)) for p in sorted(images.glob("*.png"))]

    first, again, prior = generated(), generated(), generated("--set", "bench.latent=prior")
    assert len(first) == 4 and all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, prior, strict=True))
    protocol = json.loads((run / "bench" / "val" / "scores.json").read_text())["runs"][0]["protocol"]
    assert protocol["latent"] == "prior"


def test_several_runs_side_by_side_share_the_cached_real_set(setup, cache, tmp_path, cli):
    runs = [str(run) for run in setup["runs"]]
    proc = cli("bench", *runs, "--fid-weights", str(setup["inception"]), "--report", str(tmp_path / "all.md"))
    assert "run2" in proc.stdout and "run4" in proc.stdout
    assert len(list((cache / "bench").glob("real-*"))) == 1  # one real set for both runs
    assert len(list((cache / "fidelity").glob("spadekit-real-*"))) >= 1  # its Inception features, cached
    page = (tmp_path / "all.md").read_text()
    assert "| run2 | spade |" in page and "| run4 | spade |" in page and "## Protocol (run2, run4)" in page
    assert "../" in page and "grid.png" in page  # each run's grid, linked from its run directory


def test_without_inception_weights_or_segmenter_the_scores_say_why(setup, cache, tmp_path, cli):
    proc = cli("bench", str(setup["runs"][0]), "--json", str(tmp_path / "out.json"), "--num", "3")
    result = json.loads((tmp_path / "out.json").read_text())["runs"][0]
    assert result["scores"]["fid"] is None and result["scores"]["miou"] is None
    assert "weights-inception-2015-12-05-6726825d.pth not found at" in result["not_computed"]["fid"]
    assert str(cache.parent / "torch" / "hub" / "checkpoints") in result["not_computed"]["fid"]
    assert "--segmenter-ckpt" in result["not_computed"]["miou"]
    assert "n/c" in proc.stdout and "not computed" in proc.stdout
    assert result["protocol"]["num_images"] == 3 and result["protocol"]["inception_sha256"] is None


@pytest.mark.parametrize("args, message", [
    (["--fid-weights", "missing.pth"], "missing.pth (--fid-weights / [bench] fid_weights) do not exist"),
    (["--segmenter-ckpt", "missing.pt"], "Segmenter checkpoint missing.pt does not exist"),
    (["--split", "test"], "Split 'test' is not in this dataset"),
    (["--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
    (["--precision", "fp64"], "--precision 'fp64' is not one of auto, fp32, bf16, fp16"),
])
def test_bad_bench_input_is_one_sentence(setup, cache, args, message, cli):
    proc = cli("bench", str(setup["runs"][0]), *args, check=False)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_a_folder_that_is_no_run_is_named(tmp_path, cache):
    # a real process: `spadekit bench` ends with exit 1 and one sentence (the other cases run in this process)
    proc = run_cli("bench", str(tmp_path), check=False)
    assert proc.returncode == 1 and f"{tmp_path} is not a run directory" in proc.stderr


def _facts(names: list[str], dontcare: int | None = None) -> DatasetFacts:
    return DatasetFacts(name="x", class_names=names, palette=[(0, 0, 0)] * len(names), dontcare_id=dontcare)


def test_label_mapping_matches_classes_by_name_and_ignores_the_rest():
    # like Cityscapes: a generator on the labelIds, a segmenter on the trainIds (a subset, in another order)
    mapping = LabelMapping(_facts(["unlabeled", "road", "sky", "car"], dontcare=255), _facts(["sky", "road", "car"]))
    loader_labels = torch.tensor([0, 1, 2, 3, 4])  # 4 = the loader's don't-care (label_nc)
    assert mapping(loader_labels).tolist() == [3, 1, 0, 2, 3]  # 3 = ignored
    assert mapping.ignore == 3 and mapping.unmatched == ["unlabeled"]
    assert mapping.describe() == "don't-care id 255; 1 dataset classes the segmenter does not predict (unlabeled)"
    with pytest.raises(SpadekitError, match="share no name"):
        LabelMapping(_facts(["a", "b"]), _facts(["c"]))


def test_a_trainid_segmenter_scores_a_cityscapes_labelid_run_on_the_19_evaluated_classes():
    from spadekit.data.labelspaces import cityscapes_facts
    from spadekit.data.labelspaces import cityscapes_trainid_facts as trainid_facts
    from spadekit_plugins.cityscapes.source import trainid_lut

    label_ids, train_ids = cityscapes_facts(), trainid_facts()
    mapping = LabelMapping(label_ids, train_ids)
    assert len(label_ids.class_names) == 35 and len(mapping.unmatched) == 16
    lut, _ = trainid_lut()  # cityscapesscripts' own labelId -> trainId table (255: ignored in evaluation)
    mapped = mapping(torch.arange(35)).numpy()
    assert np.array_equal(np.where(mapped == mapping.ignore, 255, mapped), lut[:35])
