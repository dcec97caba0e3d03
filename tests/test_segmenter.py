"""The smp segmenter plugin (fresh, saved, reloaded, error messages) and `spadekit segmenter train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spadekit.data.manifest import DatasetFacts
from spadekit.errors import SpadekitError
from spadekit.segmenter import TrainableSegmenter, build_segmenter
from tests.conftest import run_cli

FACTS = DatasetFacts(name="tiny", class_names=["a", "b", "c"], palette=[(0, 0, 0), (255, 0, 0), (0, 255, 0)])
OPTIONS = {"arch": "unet", "encoder": "resnet18", "input_size": 64}


@pytest.fixture(scope="module")
def fresh():
    torch.manual_seed(0)
    return build_segmenter("smp", options=OPTIONS, facts=FACTS)


@pytest.fixture(scope="module")
def saved(fresh, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("smp") / "segmenter.pt"
    fresh.save(path, epoch=3)
    return path


def _images(n: int = 2, h: int = 50, w: int = 70) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(1))


def test_predict_gives_ids_at_the_requested_size(fresh):
    fresh.model.train()
    images = _images()
    ids = fresh.predict(images)
    assert ids.shape == (2, 50, 70) and ids.dtype == torch.int64
    assert int(ids.min()) >= 0 and int(ids.max()) < FACTS.label_nc
    assert fresh.predict(images, size=(20, 30)).shape == (2, 20, 30)
    assert fresh.model.training  # predict ran in eval mode and gave the mode back
    assert fresh.network_size(50, 70) == (64, 96)  # shorter side 64, aspect ratio kept, multiples of 32


def test_smp_is_a_trainable_segmenter(fresh):
    assert isinstance(fresh, TrainableSegmenter)


def test_saved_segmenter_reloads_and_predicts_identically(fresh, saved):
    loaded = build_segmenter("smp", checkpoint=saved)
    assert (loaded.arch, loaded.encoder, loaded.input_size, loaded.facts) == ("unet", "resnet18", 64, FACTS)
    images = _images()
    fresh.model.eval()
    loaded.model.eval()
    with torch.no_grad():
        assert torch.equal(fresh.logits(images), loaded.logits(images))
    assert torch.equal(fresh.predict(images), loaded.predict(images))
    state = torch.load(saved, weights_only=True)
    assert state["format"] == "spadekit-smp-segmenter" and state["epoch"] == 3


def test_checkpoint_overrides_and_disagreements(saved):
    assert build_segmenter("smp", checkpoint=saved, options={"input_size": 128}).input_size == 128
    with pytest.raises(SpadekitError, match="arch='fpn' disagrees with checkpoint"):
        build_segmenter("smp", checkpoint=saved, options={"arch": "fpn"})
    other = DatasetFacts(name="other", class_names=["x", "y", "z"], palette=FACTS.palette)
    with pytest.raises(SpadekitError, match="not those of 'other'"):
        build_segmenter("smp", checkpoint=saved, facts=other)


def test_without_checkpoint_or_facts_it_asks_for_a_checkpoint():
    with pytest.raises(SpadekitError, match="needs a checkpoint") as err:
        build_segmenter("smp")
    assert "segmenter_ckpt" in str(err.value) and "spadekit segmenter train" in str(err.value)


def test_missing_and_invalid_checkpoints_are_named(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(SpadekitError, match=f"{missing} does not exist"):
        build_segmenter("smp", checkpoint=missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(SpadekitError, match=f"{garbage} cannot be read"):
        build_segmenter("smp", checkpoint=garbage)
    foreign = tmp_path / "generator.pt"
    torch.save({"step": 1, "G": {}}, foreign)
    with pytest.raises(SpadekitError, match=f"{foreign} is not a spadekit smp segmenter checkpoint"):
        build_segmenter("smp", checkpoint=foreign)


def test_bad_options_are_user_errors():
    with pytest.raises(SpadekitError, match="input_size"):
        build_segmenter("smp", options={"input_size": 50}, facts=FACTS)
    with pytest.raises(SpadekitError, match="Wrong architecture"):
        build_segmenter("smp", options={"arch": "nonet"}, facts=FACTS)


def test_imagenet_weights_offline_name_the_missing_file(tmp_path, monkeypatch):
    """No network: the download is mocked to fail as huggingface_hub does offline, over an empty cache."""
    import segmentation_models_pytorch.encoders as encoders
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the Hub and the file is not in the local cache")

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(encoders, "hf_hub_download", offline)
    with pytest.raises(SpadekitError) as err:
        build_segmenter("smp", options={"encoder_weights": "imagenet"}, facts=FACTS)
    message = str(err.value)
    assert f"{cache}/models--smp-hub--resnet18.imagenet/snapshots/" in message
    assert "model.safetensors" in message and "leave encoder_weights unset" in message


def test_segmenter_train_cli(toy_shards, tmp_path, cli):
    out = tmp_path / "seg"
    args = [
        "segmenter",
        "train",
        str(toy_shards),
        "--out",
        str(out),
        "--size",
        "32",
        "--epochs",
        "2",
        "--device",
        "cpu",
    ]
    proc = cli(*args)
    assert "val mIoU" in proc.stdout
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert all(0 <= line["val_miou"] <= 1 and 0 <= line["val_pixel_accuracy"] <= 1 for line in lines)

    state = torch.load(out / "segmenter.pt", weights_only=True)
    assert (state["arch"], state["encoder"], state["input_size"], state["epoch"]) == ("unet", "resnet18", 32, 2)
    assert state["scores"] == {"miou": lines[-1]["val_miou"], "pixel_accuracy": lines[-1]["val_pixel_accuracy"]}
    manifest = json.loads((toy_shards / "manifest.json").read_text())
    assert state["facts"] == manifest["dataset"]
    assert sorted(state["shards"]["sha256"].values()) == sorted(
        shard["sha256"] for split in manifest["splits"].values() for shard in split["shards"]
    )
    segmenter = build_segmenter("smp", checkpoint=out / "segmenter.pt")
    assert segmenter.predict(torch.rand(1, 3, 64, 64)).shape == (1, 64, 64)

    again = run_cli(*args, check=False)  # a real process: a refusal is exit 1 and one sentence
    assert again.returncode == 1
    assert "segmenter.pt already exists" in again.stderr and "--force" in again.stderr


def test_segmenter_train_is_reproducible_and_force_overwrites(toy_shards, tmp_path):
    from spadekit.segmenter_train import SegmenterTrainJob, train_segmenter

    job = SegmenterTrainJob(toy_shards, tmp_path, encoder="resnet18", epochs=1, batch_size=12, size=32, device="cpu")
    first = train_segmenter(job)
    weights = torch.load(tmp_path / "segmenter.pt", weights_only=True)["state_dict"]
    second = train_segmenter(SegmenterTrainJob(**{**job.__dict__, "force": True}))
    again = torch.load(tmp_path / "segmenter.pt", weights_only=True)["state_dict"]
    assert first == second
    assert all(torch.equal(weights[key], again[key]) for key in weights)


def test_segmenter_train_bad_shards(tmp_path):
    from spadekit.segmenter_train import SegmenterTrainJob, train_segmenter

    with pytest.raises(SpadekitError, match="manifest.json does not exist"):
        train_segmenter(SegmenterTrainJob(tmp_path, tmp_path / "seg"))


def test_segmenter_train_trains_any_trainable_plugin(toy_shards, tmp_path, monkeypatch):
    from spadekit.segmenter_train import SegmenterTrainJob, train_segmenter

    monkeypatch.setenv("SPADEKIT_PLUGINS", "pixels=tests.fixture_plugins:pixels")
    scores = train_segmenter(SegmenterTrainJob(toy_shards, tmp_path, segmenter="pixels", epochs=1, device="cpu"))
    assert [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]
    assert torch.load(tmp_path / "segmenter.pt", weights_only=True)["scores"] == scores.as_dict()
    segmenter = build_segmenter("pixels", checkpoint=tmp_path / "segmenter.pt")
    assert segmenter.predict(torch.rand(1, 3, 16, 16)).shape == (1, 16, 16)


def test_segmenter_train_refuses_a_plugin_that_cannot_be_trained(toy_shards, tmp_path, cli):
    proc = cli("segmenter", "train", str(toy_shards), "--out", str(tmp_path), "--segmenter", "drn", check=False)
    assert proc.returncode == 1 and "Segmenter 'drn' cannot be trained" in proc.stderr
