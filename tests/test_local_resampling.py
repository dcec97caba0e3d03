"""Local resampling (OASIS, Section 3.3): `synth --resample-region` and the page's `regions` change the image
inside the region and keep it outside.

The measure: the mean absolute change of the pixels (0..255, over RGB) inside the region against the mean
absolute change outside it, between the `--seed` image and the resampled one. The region's new latent enters
every SPADE of the generator at the region's own pixels, so they change fully; a pixel outside feels it only
through the convolutions whose window straddles the border (and, at the low resolutions, through features that
mix both sides), so it changes less, and the less the farther it is. A generator that resampled the whole
image would give equal means; one that ignored the latent would give 0 inside.

The run is trained for 2 steps by the trainer, then its generator's convolutions are drawn again at He scale
(`_awaken`): at OASIS's initialization (Xavier, gain 0.02) an untrained generator paints a flat grey whatever
its latent, and it takes hours of training to grow out of that; the property tested is the plumbing of the
per-pixel latent, which holds for any weights.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from spadekit.checkpoints import CHECKSUM, latest_checkpoint, load_checkpoint, save_checkpoint
from spadekit.imageio import save_png
from spadekit.serve.app import create_app
from spadekit.synthesis import Synthesizer
from tests.test_train import TINY

OASIS = {**{k: v for k, v in TINY.items() if not k.startswith("model.")},
         "model.name": "oasis", "model.ngf": 4, "model.channels_D": 4, "model.num_res_blocks": 4, "model.z_dim": 8,
         "model.hidden": 16, "model.norm": "batch", "train.max_steps": 2}


@pytest.fixture(scope="module")
def oasis_run(toy_shards, tmp_path_factory):
    from spadekit.config import load_recipe
    from spadekit.train.loop import TrainJob, train

    run = tmp_path_factory.mktemp("oasis") / "run"
    train(TrainJob(load_recipe(None, {**OASIS, "data.shards": str(toy_shards)}), run))
    _awaken(latest_checkpoint(run))
    return run


def _awaken(checkpoint: Path) -> None:
    """Redraw the 4-D (conv) weights of the checkpoint's generators from N(0, 2 / fan_in), seeded."""
    state = load_checkpoint(checkpoint)
    torch.manual_seed(0)
    for key in ("generator", "ema"):
        for name, weight in state[key].items():
            if weight.dim() == 4 and weight.is_floating_point():
                state[key][name] = torch.randn_like(weight) * (2 / weight[0].numel()) ** 0.5
    save_checkpoint(checkpoint, {k: v for k, v in state.items() if k != CHECKSUM})


def _mask() -> np.ndarray:
    """A 64x64 scene: class 1 above, class 2 below, a square of class 5 in the middle (the region)."""
    mask = np.full((64, 64), 1, np.uint8)
    mask[32:] = 2
    mask[20:44, 20:44] = 5
    return mask


def _change(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64)).mean(-1)
    return float(diff[region].mean()), float(diff[~region].mean())


def test_resampling_a_class_changes_it_more_than_the_rest(oasis_run, tmp_path, cli):
    save_png(tmp_path / "mask.png", _mask())
    common = ["--run", str(oasis_run), "--seed", "3", "--precision", "fp32"]
    cli("synth", str(tmp_path / "mask.png"), *common, "--out", str(tmp_path / "base.png"))
    cli("synth", str(tmp_path / "mask.png"), *common, "--resample-region", "5", "--n", "2",
        "--out", str(tmp_path / "new"))
    base = np.asarray(Image.open(tmp_path / "base.png"))
    region = _mask() == 5
    for k in range(2):
        inside, outside = _change(base, np.asarray(Image.open(tmp_path / "new" / f"mask_{k}.png")), region)
        print(f"sample {k}: mean |change| inside {inside:.2f}, outside {outside:.2f}")
        assert inside > 0 and outside < inside


def test_a_region_mask_file_and_a_class_name_select_the_same_region(oasis_run, tmp_path, cli):
    save_png(tmp_path / "mask.png", _mask())
    save_png(tmp_path / "region.png", (_mask() == 5).astype(np.uint8) * 255)
    name = Synthesizer.load(oasis_run).info.facts.class_names[5]
    common = ["--run", str(oasis_run), "--seed", "4", "--precision", "fp32"]
    cli("synth", str(tmp_path / "mask.png"), *common, "--resample-region", name, "--out", str(tmp_path / "a.png"))
    cli("synth", str(tmp_path / "mask.png"), *common, "--resample-region", str(tmp_path / "region.png"),
        "--out", str(tmp_path / "b.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))


@pytest.mark.parametrize("region, message", [
    ("8", "covers no pixel of mask"),
    ("no-such-class", "is neither a file nor a class of toyscapes"),
])
def test_a_region_that_selects_nothing_is_one_sentence(oasis_run, tmp_path, cli, region, message):
    save_png(tmp_path / "mask.png", _mask())
    proc = cli("synth", str(tmp_path / "mask.png"), "--run", str(oasis_run), "--resample-region", region,
               "--out", str(tmp_path / "x.png"), check=False)
    assert proc.returncode == 1 and message in proc.stderr and not (tmp_path / "x.png").exists()


def test_a_run_with_one_latent_per_image_refuses_local_resampling(tiny_run, tmp_path, cli):
    save_png(tmp_path / "mask.png", _mask())
    proc = cli("synth", str(tmp_path / "mask.png"), "--run", str(tiny_run), "--resample-region", "5",
               "--out", str(tmp_path / "x.png"), check=False)
    assert proc.returncode == 1 and "takes one latent per image" in proc.stderr


def test_the_page_resamples_one_class_and_keeps_the_rest(oasis_run):
    engine = Synthesizer.load(oasis_run, precision="fp32")
    client = TestClient(create_app(engine))
    assert client.get("/palette").json()["local_resampling"] is True
    buffer = io.BytesIO()
    Image.fromarray(_mask()).save(buffer, format="PNG")

    def painted(**fields) -> np.ndarray:
        reply = client.post("/synthesize", files={"mask": ("m.png", buffer.getvalue(), "image/png")},
                            data={"seed": "3", **fields})
        assert reply.status_code == 200, reply.text
        return np.asarray(Image.open(io.BytesIO(reply.content)))

    base, again, new = painted(), painted(regions="5:11"), painted(regions="5:12")
    inside, outside = _change(again, new, _mask() == 5)
    assert outside < inside
    assert not np.array_equal(base, again)
    bad = client.post("/synthesize", files={"mask": ("m.png", buffer.getvalue(), "image/png")},
                      data={"seed": "3", "regions": "99:1"})
    assert bad.status_code == 400 and "class id" in bad.json()["detail"]
