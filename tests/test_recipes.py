"""The shipped recipes load, and the paper recipes carry the paper's training setup (Appendix A)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spadekit.config import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads(path):
    load_recipe(path)


@pytest.mark.parametrize(
    ("name", "epochs", "decay", "crop", "aspect", "upsampling", "vae"),
    [
        ("spade_coco", 100, 0, 256, 1.0, "normal", False),
        ("spade_ade20k", 200, 100, 256, 1.0, "normal", False),
        ("spade_cityscapes", 200, 100, 512, 2.0, "more", False),
        ("spade_flickr", 50, 0, 256, 1.0, "normal", True),
    ],
)
def test_paper_recipes_follow_the_paper(name, epochs, decay, crop, aspect, upsampling, vae):
    recipe = load_recipe(RECIPES / f"{name}.toml")
    assert (recipe.train.epochs, recipe.train.decay_epochs) == (epochs, decay)
    assert (recipe.data.crop_size, recipe.data.aspect_ratio, recipe.data.batch_size) == (crop, aspect, 32)
    options = recipe.model.options
    assert options["num_upsampling_layers"] == upsampling and options["use_vae"] is vae
    assert (recipe.optim.lr_G, recipe.optim.lr_D, recipe.optim.beta1, recipe.optim.beta2) == (1e-4, 4e-4, 0.0, 0.9)
    assert (recipe.loss.gan_mode, recipe.loss.lambda_feat, recipe.loss.lambda_vgg) == ("hinge", 10.0, 10.0)
