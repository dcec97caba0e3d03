"""Recipe configuration: defaults, precedence, error messages, TOML round trip and `spadekit recipe show`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spadekit.cli.recipe import app
from spadekit.config import Recipe, load_recipe
from spadekit.errors import SpadekitError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "recipes" / "toyscapes_spade.toml"
TOY = {"model.name": "toygen"}


@pytest.fixture(autouse=True)
def toy_plugin(monkeypatch):
    for name in [n for n in os.environ if n.upper().startswith("SPADEKIT_")]:
        monkeypatch.delenv(name)
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    monkeypatch.setenv("SPADEKIT_PLUGINS", "toygen=fake_generator:spec")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


def error_of(path: Path | None, overrides: dict | None = None) -> str:
    with pytest.raises(SpadekitError) as info:
        load_recipe(path, overrides)
    return str(info.value)


def test_defaults_follow_the_paper_and_official_code():
    r = load_recipe(None, TOY)
    assert (r.data.preprocess, r.data.load_size, r.data.crop_size, r.data.aspect_ratio, r.data.flip) == (
        "resize_and_crop", 286, 256, 1.0, True,
    )
    assert (r.discriminator.num_D, r.discriminator.n_layers, r.discriminator.ndf) == (2, 4, 64)
    assert r.discriminator.norm == "spectralinstance"
    loss = r.loss
    assert (loss.gan_mode, loss.lambda_feat, loss.lambda_vgg, loss.lambda_kld) == ("hinge", 10, 10, 0.05)
    assert (r.optim.lr_G, r.optim.lr_D, r.optim.beta1, r.optim.beta2) == (1e-4, 4e-4, 0.0, 0.9)
    assert (r.train.epochs, r.train.decay_epochs, r.train.precision) == (50, 0, "fp32")
    assert r.bench.split == "val"


def test_toml_overrides_defaults(tmp_path):
    r = load_recipe(write(tmp_path, '[model]\nname = "toygen"\n[train]\nseed = 7\n[loss]\ngan_mode = "ls"\n'))
    assert (r.train.seed, r.loss.gan_mode, r.train.epochs) == (7, "ls", 50)


def test_env_overrides_toml_and_set_overrides_env(tmp_path, monkeypatch):
    path = write(tmp_path, '[model]\nname = "toygen"\n[train]\nseed = 7\nepochs = 9\n')
    monkeypatch.setenv("SPADEKIT_TRAIN__SEED", "3")
    monkeypatch.setenv("SPADEKIT_OPTIM__LR_G", "0.5")
    r = load_recipe(path)
    assert (r.train.seed, r.train.epochs, r.optim.lr_G) == (3, 9, 0.5)
    assert load_recipe(path, {"train.seed": 11}).train.seed == 11


def test_other_spadekit_variables_do_not_break_loading(monkeypatch):
    monkeypatch.setenv("SPADEKIT_CACHE_DIR", "/tmp/x")
    monkeypatch.setenv("SPADEKIT_DEBUG", "1")
    assert load_recipe(None, TOY) == load_recipe(None, TOY)
    assert os.environ["SPADEKIT_PLUGINS"]


def test_unknown_key_names_dotted_key_and_nearest(tmp_path):
    message = error_of(write(tmp_path, '[model]\nname = "toygen"\n[train]\nsed = 1\n'))
    assert "'train.sed'" in message and "'seed'" in message and "recipe.toml" in message


def test_unknown_section_names_nearest(tmp_path):
    message = error_of(write(tmp_path, "[trian]\nseed = 1\n"))
    assert "'trian'" in message and "'train'" in message


def test_malformed_section_variable_is_a_user_error(monkeypatch):
    monkeypatch.setenv("SPADEKIT_TRAIN", "not json")
    assert "SPADEKIT_" in error_of(None, TOY)


def test_unknown_env_key_names_the_variable(monkeypatch):
    monkeypatch.setenv("SPADEKIT_TRAIN__SED", "1")
    message = error_of(None, TOY)
    assert "'train.sed'" in message and "SPADEKIT_TRAIN__SED" in message and "'seed'" in message


def test_unknown_set_key_names_nearest():
    message = error_of(None, {**TOY, "train.sede": 1})
    assert "'train.sede'" in message and "'train.seed'" in message
    assert "'data.batchsize'" in error_of(None, {"data.batchsize": 2})


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"train.precision": "fp8"}, "'train.precision'"),
        ({"loss.gan_mode": "wgan"}, "'loss.gan_mode'"),
        ({"optim.lr_D": -1.0}, "'optim.lr_D'"),
        ({"data.batch_size": 0}, "'data.batch_size'"),
        ({"train.decay_epochs": 60}, "'train'"),
    ],
)
def test_bad_values_name_the_key(overrides, key):
    message = error_of(None, {**TOY, **overrides})
    assert key in message and "--set" in message


def test_missing_file_and_broken_toml_name_the_file(tmp_path):
    message = error_of(tmp_path / "nope.toml")
    assert "nope.toml" in message and "does not exist" in message
    message = error_of(write(tmp_path, "[train]\nseed = = 1\n"))
    assert "recipe.toml" in message and "line 2" in message


def test_model_options_are_validated_by_the_plugin(tmp_path):
    r = load_recipe(write(tmp_path, '[model]\nname = "toygen"\nngf = 16\n'))
    options = r.model_plugin_options()
    assert type(options).__name__ == "ToyGenOptions" and options.ngf == 16 and options.use_vae is False
    assert r.model.options == {"ngf": 16, "use_vae": False}
    message = error_of(write(tmp_path, '[model]\nname = "toygen"\nngff = 16\n'))
    assert "'model.ngff'" in message and "'ngf'" in message
    assert "'model.ngf'" in error_of(None, {**TOY, "model.ngf": -2})


def test_model_option_from_env_is_coerced(monkeypatch):
    monkeypatch.setenv("SPADEKIT_MODEL__NGF", "32")
    assert load_recipe(None, TOY).model_plugin_options().ngf == 32


def test_unknown_generator_lists_available():
    message = error_of(None, {"model.name": "toygem"})
    assert "'toygem'" in message and "toygen" in message


def test_resolved_toml_round_trips(tmp_path):
    r = load_recipe(EXAMPLE, {"model.ngf": 12, "bench.segmenter": 'u"n\\e\tt\x7fé'})
    text = r.resolved_toml()
    model = tomllib.loads(text)["model"]
    assert model["name"] == "spade" and model["ngf"] == 12 and model["use_vae"] is True
    again = load_recipe(write(tmp_path, text))
    assert again == r and isinstance(again, Recipe)
    assert again.data.shards == Path("shards/toyscapes") and again.train.decay_epochs == 10


def test_example_recipe_names_the_spade_generator():
    assert tomllib.loads(EXAMPLE.read_text())["model"]["name"] == "spade"


def test_cli_show_prints_resolved_toml_and_json():
    runner = CliRunner()
    result = runner.invoke(app, ["show", str(EXAMPLE), "--set", "train.seed=5"])
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.output)["train"]["seed"] == 5
    result = runner.invoke(app, ["show", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["optim"]["lr_D"] == 4e-4


def test_cli_show_user_error_is_a_spadekit_error(tmp_path):
    result = CliRunner().invoke(app, ["show", str(tmp_path / "missing.toml")])
    assert isinstance(result.exception, SpadekitError) and "missing.toml" in str(result.exception)
