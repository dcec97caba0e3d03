"""The preprocessing options (official --preprocess_mode, --load_size, --crop_size, --aspect_ratio, --no_flip),
declared once: `Preprocess` for the loader and the recipe's `[data]` section both build on them. Torch-free,
so that recipes load without torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["resize_and_crop", "fixed", "scale_width_and_crop", "none"]
DEFAULT_MODE: Mode = "resize_and_crop"


class PreprocessOptions(BaseModel):
    """The sizes and flip shared by `Preprocess` and the recipe's [data] section (which names the mode
    `preprocess`, as its TOML key)."""

    model_config = ConfigDict(extra="forbid")

    load_size: int = Field(286, gt=0)
    crop_size: int = Field(256, gt=0)
    aspect_ratio: float = Field(1.0, gt=0)
    flip: bool = True


class Preprocess(PreprocessOptions):
    """One preprocessing: the mode and its sizes (see `spadekit.data.transforms`)."""

    mode: Mode = DEFAULT_MODE
