"""The generator plugin contract: every registered generator, first-party or from a third-party distribution,
trains two steps with `spadekit train`, is saved, reloads with `spadekit.run_info.load_generator` and synthesizes.

The third-party example (tests/thirdparty_generator, the `tinygen` plugin of the `spadekit-tinygen`
distribution) is installed offline with pip into a temporary folder, so the virtual environment is left as it
was: put on PYTHONPATH for `spadekit plugins` in a subprocess, on sys.path for the training in this process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spadekit import registry
from spadekit.nn.semantics import to_semantics
from spadekit.run_info import load_generator
from tests.conftest import REPO, run_cli

THIRD_PARTY = Path(__file__).resolve().parent / "thirdparty_generator"
# Options small enough to train a step in about a second; every first-party generator must have an entry.
TINY_OPTIONS = {
    "spade": {"ngf": 4, "hidden": 8, "use_vae": True, "z_dim": 8},  # with the image encoder and KL term
    "pix2pixhd": {"ngf": 4, "spade_hidden": 8},
    "crn": {"widths": [8, 8, 8, 4, 4]},  # regression only: no discriminator step
    "oasis": {"ngf": 2, "hidden": 8, "z_dim": 4, "channels_D": 4},  # its own discriminator and objective
    "clade": {"ngf": 4, "add_dist": True, "use_vae": True, "z_dim": 8},  # with ICPE
    "tinygen": {"width": 8},  # the third-party plugin
}
TINY_RUN = {
    "data.load_size": 72,
    "data.crop_size": 64,
    "data.batch_size": 2,
    "data.num_workers": 0,
    "discriminator.ndf": 8,
    "loss.lambda_vgg": 0.0,
    "loss.lambda_l1": 1.0,  # no VGG19 weights offline
    "train.max_steps": 2,
    "train.log_every": 1,
    "train.sample_every": 2,
    "train.checkpoint_every": 2,
    "train.sample_rows": 2,
}


@pytest.fixture(scope="module")
def third_party_site(tmp_path_factory) -> Path:
    """A folder holding the installed third-party distribution, for PYTHONPATH."""
    source = tmp_path_factory.mktemp("source") / "thirdparty_generator"
    shutil.copytree(THIRD_PARTY, source)  # pip builds inside the source tree: keep tests/ clean
    site = tmp_path_factory.mktemp("site")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--quiet",
        "--target",
        str(site),
        str(source),
    ]
    subprocess.run(command, check=True, capture_output=True)
    return site


def _env(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def test_every_first_party_generator_is_under_contract():
    first_party = {name for name, e in registry.entries("generators").items() if e.distribution == "spadekit"}
    assert first_party <= set(TINY_OPTIONS)


def test_plugins_lists_the_third_party_generator_and_every_generator_size(third_party_site):
    # a real process: the installed command finds a distribution installed on its PYTHONPATH
    rows = json.loads(run_cli("plugins", "--json", env=_env(third_party_site)).stdout)
    generators = {row["name"]: row for row in rows if row["group"] == "spadekit.generators"}
    assert set(TINY_OPTIONS) <= set(generators)
    assert (generators["tinygen"]["distribution"], generators["tinygen"]["version"]) == ("spadekit-tinygen", "0.1.0")
    assert generators["spade"]["parameters"] == {"coco-stuff": 97_480_899, "ade20k": 96_492_483}
    assert generators["pix2pixhd"]["parameters"]["coco-stuff"] == 183_032_259
    assert generators["tinygen"]["parameters"]["coco-stuff"] == 184 * 16 * 9 + 16 + 16 * 16 * 9 + 16 + 16 * 3 * 9 + 3


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_generator_trains_saves_reloads_and_synthesizes(name, third_party_site, toy_shards, tmp_path, monkeypatch,
                                                         cli):
    monkeypatch.syspath_prepend(str(third_party_site))  # the distribution's path, as PYTHONPATH puts it
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'[data]\nshards = "{toy_shards}"\n[model]\nname = "{name}"\n')
    options = {f"model.{key}": value for key, value in TINY_OPTIONS[name].items()}
    sets = [f"--set={key}={json.dumps(value)}" for key, value in {**TINY_RUN, **options}.items()]
    run = tmp_path / "run"
    cli("train", str(recipe), "--run-dir", str(run), *sets)
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [step["step"] for step in steps] == [1, 2] and (run / "samples" / "step_00000002.png").is_file()
    if name == "tinygen":  # the third party's own method: its discriminator and losses trained
        assert {"G_lsgan", "G_L1", "D_lsgan"} <= set(steps[-1])

    generator, info = load_generator(run)
    label = torch.randint(0, info.space.one_hot_nc, (2, 1, 8, 8)).repeat_interleave(8, 2).repeat_interleave(8, 3)
    semantics = to_semantics(label, torch.zeros(2, 1, 64, 64), info.space)
    with torch.no_grad():
        z = generator.encoder(torch.rand(2, 3, 64, 64) * 2 - 1)[0] if generator.encoder is not None else None
        image = generator(semantics, z)
    assert image.shape == (2, 3, 64, 64) and image.isfinite().all() and image.abs().max() <= 1
