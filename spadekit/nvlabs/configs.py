"""The official dataset configurations (`--dataset_mode coco|ade20k|cityscapes`): label space and image geometry.

A configuration is what the import assumes when the checkpoint folder has no opt.txt, and what an opt.txt
adjusts when it has one (`spadekit.nvlabs.options.configure`).
"""

from __future__ import annotations

from dataclasses import dataclass

from spadekit.data.manifest import DatasetFacts
from spadekit.datasets import OFFICIAL_DATASETS, PAPER_DATASETS
from spadekit.errors import SpadekitError
from spadekit.nn.semantics import LabelSpace

__all__ = ["OFFICIAL_DATASETS", "NvlabsConfig", "official_config", "official_semantic_nc"]


@dataclass(frozen=True)
class NvlabsConfig:
    """One dataset configuration of the official code: its label space, image geometry and data settings."""

    name: str
    facts: DatasetFacts
    crop_size: int
    aspect_ratio: float = 1.0
    num_upsampling_layers: str = "normal"  # the default; a generator with up_4 weights is 'most' regardless
    preprocess: str = "resize_and_crop"
    load_size: int = 286
    use_instance: bool = True  # feed instance edges when the dataset has instance maps (official not no_instance)

    @property
    def space(self) -> LabelSpace:
        return LabelSpace.from_facts(self.facts, self.use_instance)

    def describe(self) -> str:
        """The geometry and input channels in a few words, for messages: 'crop 256, aspect ratio 1.0, ...'."""
        space = self.space
        inputs = f"{space.label_nc} classes" + (" + don't-care" if space.dontcare else "")
        inputs += " + instance edges" if space.use_instance else ""
        return (f"crop {self.crop_size}, aspect ratio {self.aspect_ratio:g}, {self.num_upsampling_layers} "
                f"upsampling, {self.preprocess} (load {self.load_size}), {space.semantic_nc} input channels "
                f"({inputs})")


def official_config(dataset: str) -> NvlabsConfig:
    """The official TrainOptions/TestOptions defaults of `--dataset_mode coco|ade20k|cityscapes`."""
    if dataset not in OFFICIAL_DATASETS:
        raise SpadekitError(
            f"--dataset {dataset!r} is not an official SPADE configuration; use coco, ade20k or cityscapes "
            "(the one the checkpoint was trained on)."
        )
    row = PAPER_DATASETS[dataset]
    return NvlabsConfig(row.name, row.facts(), row.crop_size, row.aspect_ratio, row.num_upsampling_layers,
                        row.preprocess, row.load_size)


def official_semantic_nc(dataset: str) -> int:
    """The input channels of the official generator of `dataset` (classes, don't-care, instance edges)."""
    return official_config(dataset).space.semantic_nc


def upsamplings(num_upsampling_layers: str) -> int:
    """The spade plugin's own count of 2x upsamplings, asked through the registry (its options model's table)."""
    from spadekit import registry

    return registry.get("generators", "spade").options.UPSAMPLINGS[num_upsampling_layers]


def image_size(config: NvlabsConfig) -> tuple[int, int]:
    """(height, width) of the images: crop_size wide, crop_size / aspect_ratio high."""
    return round(config.crop_size / config.aspect_ratio), config.crop_size


def head_cells(config: NvlabsConfig, num_upsampling_layers: str) -> int:
    """sh * sw, the cells of the generator's first feature map: the width and height halved once per upsampling."""
    n = upsamplings(num_upsampling_layers)
    height, width = image_size(config)
    return (height >> n) * (width >> n)
