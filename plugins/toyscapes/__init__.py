"""toyscapes: procedural landscapes, spadekit's built-in dataset (no download needed)."""
