"""The normalization names of the official configuration strings, declared once and torch-free, so that
recipes and plugin specs validate them without importing torch (`spadekit.nn.norms` builds the layers)."""

from __future__ import annotations

from typing import Literal

ParamFreeNorm = Literal["sync_batch", "batch", "instance"]  # what SPADE modulates (paper Eq. 1)
LayerNorm = Literal[  # a conv's norm; 'spectral' adds spectral norm (official get_nonspade_norm_layer)
    "spectralinstance", "spectralbatch", "spectralsync_batch", "spectralnone",
    "instance", "batch", "sync_batch", "none",
]
