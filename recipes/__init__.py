"""The shipped recipes, installed as the `spadekit_recipes` package so that `spadekit demo` finds
toyscapes_spade.toml in any install (`importlib.resources.files("spadekit_recipes")`)."""
