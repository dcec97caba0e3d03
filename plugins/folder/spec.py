"""The folder and flickr dataset plugins: your own photos, with their label maps or auto-labelled.

folder: --src DIR holding images/ (photos), optional labels/ (index or colour-coded PNGs, same stem),
optional instances/ (8/16-bit PNGs, same stem) and optional classes.txt; sub-folders of images/ are splits.
Without labels/, the photos are labelled by a segmenter plugin. flickr: --src DIR is a folder of photos (flat
or in split sub-folders), always auto-labelled, with `val_count` photos held out as the "val" split.
See spadekit_plugins.folder.source for the layout and the rules.

This module stays light (no numpy): `spadekit plugins` imports it to show the summary.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import PluginSpec, SpadekitError

DEVICE_PATTERN = r"^(cpu|mps|cuda(:\d+)?)$"


class AutoLabelOptions(BaseModel):
    """Options of both plugins: the dataset's name and the segmenter that labels photos without labels."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, description="dataset name in the manifest (default: the --src name)")
    segmenter: str = Field("smp", description="segmenter plugin that labels photos that have no label map")
    segmenter_ckpt: Path | None = Field(
        None,
        description="segmenter weights (smp: DIR/segmenter.pt of `spadekit segmenter train`; a paper segmenter "
        "looks in the torch hub cache when none is given)",
    )
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description="where the segmenter runs: cpu, cuda, cuda:1, mps")


class FolderOptions(AutoLabelOptions):
    classes: Path | None = Field(
        None, description="class-name file, one name per line, line i = class id i (default: SRC/classes.txt)"
    )
    palette: Path | None = Field(
        None, description="colours of colour-coded label PNGs: lines `R G B name`, entry i = class id i"
    )
    dontcare: int | None = Field(None, ge=0, le=65535, description="label id meaning unlabelled (e.g. 255)")
    num_classes: int | None = Field(
        None, ge=1, le=65535, description="number of classes (ids 0..N-1) when there is neither classes.txt nor palette"
    )


class FlickrOptions(AutoLabelOptions):
    segmenter: str = Field(
        "deeplabv2",
        description="segmenter plugin that labels the photos (the paper's: DeepLabV2 on COCO-Stuff's 182 classes)",
    )
    val_count: int = Field(
        0,
        ge=0,
        description="photos held out of train as the val split: those whose stems have the smallest SHA-1 "
        "(the paper holds out 1000 of 41000)",
    )


def _need_src(dataset: str, src: Path | None, what: str) -> Path:
    if src is None:
        raise SpadekitError(f"Dataset {dataset!r} needs --src: {what}.")
    return Path(src)


def build_folder(options: FolderOptions, src: Path | None = None):
    src = _need_src("folder", src, "the folder that holds images/ (and optionally labels/, instances/, classes.txt)")
    from spadekit_plugins.folder.source import folder_source

    return folder_source(options, src)


def build_flickr(options: FlickrOptions, src: Path | None = None):
    src = _need_src("flickr", src, "the folder of photos (flat, or one sub-folder per split)")
    from spadekit_plugins.folder.source import flickr_source

    return flickr_source(options, src)


spec = PluginSpec(
    kind="datasets",
    name="folder",
    summary="Your own data (--src with images/, optional labels/, instances/, classes.txt; split sub-folders); "
    "without labels/, auto-labelled by a segmenter.",
    options=FolderOptions,
    factory=build_folder,
)

flickr_spec = PluginSpec(
    kind="datasets",
    name="flickr",
    summary="A folder of photos (flat or split sub-folders) auto-labelled by a segmenter plugin; "
    "val_count photos held out as val.",
    options=FlickrOptions,
    factory=build_flickr,
)
