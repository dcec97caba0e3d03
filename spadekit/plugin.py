"""Everything a plugin imports from spadekit, in one place: `from spadekit.plugin import PluginSpec, ...`.

A plugin (first-party in plugins/, or a third-party distribution) imports spadekit only through this module,
so that these names are the plugin API and the rest of spadekit may change under them (tests/test_plugin_api.py
keeps the first-party plugins to it). The contracts are `Generator` (and, for a method that trains differently,
`Method`), `DatasetSource`, `Segmenter` and `TrainableSegmenter` (Protocols; see spadekit.generator,
spadekit.method, spadekit.data.source, spadekit.segmenter).

A plugin's spec module must stay light (no torch): the spec names and errors below are imported eagerly; the
rest is imported when first asked for (PEP 562), so `from spadekit.plugin import PluginSpec` never loads torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from spadekit import __version__
from spadekit.errors import SpadekitError
from spadekit.registry import PluginSpec

# name -> the module that defines it; imported on first use
_LAZY = {
    # contracts
    "Generator": "spadekit.generator",
    "GeneratorContext": "spadekit.generator",
    "DatasetSource": "spadekit.data.source",
    "Segmenter": "spadekit.segmenter",
    "TrainableSegmenter": "spadekit.segmenter",
    "Method": "spadekit.method",
    "Objective": "spadekit.method",
    "unwrap": "spadekit.method",
    # datasets: facts, samples, reading source files, known label spaces
    "DatasetFacts": "spadekit.data.manifest",
    "Sample": "spadekit.data.sample",
    "SkipSample": "spadekit.data.sample",
    "COLOUR_MODES": "spadekit.data.files",
    "PHOTO_SUFFIXES": "spadekit.data.files",
    "as_label_dtype": "spadekit.data.files",
    "check_same_size": "spadekit.data.files",
    "read_index_map": "spadekit.data.files",
    "read_rgb": "spadekit.data.files",
    "require_pair": "spadekit.data.files",
    "UnknownColours": "spadekit.data.palette",
    "decode_colours": "spadekit.data.palette",
    "CITYSCAPES_TRAIN_IGNORE": "spadekit.data.labelspaces",
    "ade20k_150_facts": "spadekit.data.labelspaces",
    "ade20k_facts": "spadekit.data.labelspaces",
    "bit_colormap": "spadekit.data.labelspaces",
    "cityscapes_facts": "spadekit.data.labelspaces",
    "cityscapes_trainid_facts": "spadekit.data.labelspaces",
    "coco_stuff_facts": "spadekit.data.labelspaces",
    # generators: the label space and the shared blocks (spadekit.nn)
    "LabelSpace": "spadekit.nn.semantics",
    "ConvEncoder": "spadekit.nn.encoder",
    "conv2d": "spadekit.nn.layers",
    "init_xavier": "spadekit.nn.layers",
    "linear": "spadekit.nn.layers",
    "spectral_norm": "spadekit.nn.layers",
    "normalized_conv": "spadekit.nn.norms",
    "param_free_norm": "spadekit.nn.norms",
    "ParamFreeNorm": "spadekit.nn.norm_names",
    "LayerNorm": "spadekit.nn.norm_names",
    "SPADEResBlock": "spadekit.nn.resblock",
    "SPADE": "spadekit.nn.spade",
    "resize_segmap": "spadekit.nn.spade",
    "kept_on": "spadekit.nn.class_modulation",
    "modulate": "spadekit.nn.class_modulation",
    "norm_as_affine": "spadekit.nn.class_modulation",
    # segmenters: published weights and spadekit checkpoints; a dataset that labels photos with a segmenter
    "build_segmenter": "spadekit.segmenter",
    "find_weights": "spadekit.weights",
    "load_failure": "spadekit.weights",
    "load_into": "spadekit.weights",
    "load_weights_only": "spadekit.weights",
    "read_state_dict": "spadekit.weights",
    "save_checkpoint": "spadekit.checkpoints",
    "verify_checksum": "spadekit.checkpoints",
}

__all__ = ["PluginSpec", "SpadekitError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
