"""The benchmark protocol: every choice that moves a score, saved and printed beside the scores.

Scores of semantic image synthesis move with details that papers rarely state: the resolution, how real
images and labels are resized, which real set FID compares with, the segmenter and its weights, the label
space and what is ignored, the FID implementation and its Inception weights (see the SPADE issue tracker:
35 vs 19 Cityscapes classes, nearest vs bilinear labels, ...). `Protocol` holds all of them; two numbers
are comparable when their protocols are equal.

The real set (its images at the generation resolution, and its Inception statistics) depends only on
`real_set_key()`: the shards' checksums, the split, the number of images, the resolution and the resize
filter; it is computed once and cached under that key.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict

IMAGE_RESIZE = "bicubic, antialiased (Pillow's filter)"
LABEL_RESIZE = "nearest (Pillow's)"
INCEPTION_RESIZE = "bilinear to 299x299 as TensorFlow 1.x (torch-fidelity)"
WEIGHTS = {"ema": "EMA of the generator", "raw": "the trained generator, no EMA (as the paper's code)"}


class Protocol(BaseModel):
    """What was measured and how; saved in scores.json and printed above the table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    shards_sha256: str  # over the checksums of the split's shards, in order
    split: str
    num_images: int
    resolution: tuple[int, int]  # (width, height) of the generated and the real images
    image_resize: str = IMAGE_RESIZE  # real images to the resolution
    label_resize: str = LABEL_RESIZE  # label and instance maps to the resolution
    latent: str  # "encode": z drawn around the encoding of the paired real image (official test.py);
    # "prior": z ~ N(0, I); "none": the generator takes no latent
    seed: int
    label_space: str  # the dataset's classes and don't-care id
    generator_weights: str = "ema"  # "ema" (the EMA generator) or "raw" (the trained weights, as the paper's code)
    # segmentation scores
    segmenter: str | None
    segmenter_sha256: str | None  # of the checkpoint file (the files, in order, for several)
    segmenter_classes: int | None
    segmenter_procedure: str | None = None  # how the segmenter prepares, scales and fuses its input
    segment_resolution: tuple[int, int] | None = None  # (width, height) images are segmented at; None: resolution
    label_matching: str | None = None  # how the dataset's label ids map onto the segmenter's classes
    ignored: str | None  # which ground-truth pixels the scores skip
    # FID / KID
    fid_backend: str  # "torch-fidelity X.Y.Z, inception-v3-compat, pool3 2048-d"
    inception_sha256: str | None
    inception_resize: str = INCEPTION_RESIZE
    kid_subsets: int
    kid_subset_size: int

    def real_set_key(self) -> str:
        """The cache key of the real images and their Inception statistics."""
        fields = ("dataset", "shards_sha256", "split", "num_images", "resolution", "image_resize")
        return _digest({name: getattr(self, name) for name in fields})[:16]

    def fidelity_key(self) -> str:
        """The cache key of the real set's Inception features (the real set and the weights)."""
        return _digest({"real": self.real_set_key(), "backend": self.fid_backend,
                        "weights": self.inception_sha256, "resize": self.inception_resize})[:16]

    def segmentation_key(self) -> str:
        """The cache key of the segmentation scores of the real set (the real set, and how it is segmented)."""
        fields = ("segmenter", "segmenter_sha256", "segmenter_procedure", "segment_resolution", "label_matching",
                  "ignored")
        return _digest({"real": self.real_set_key(), **{name: getattr(self, name) for name in fields}})[:16]

    def rows(self) -> list[tuple[str, str]]:
        """(name, value) lines for printing."""
        w, h = self.resolution
        seg = "not used" if self.segmenter is None else (
            f"{self.segmenter} ({self.segmenter_classes} classes), checkpoint sha256 {self.segmenter_sha256}"
            + (f"; {self.segmenter_procedure}" if self.segmenter_procedure else ""))
        sw, sh = self.segment_resolution or self.resolution
        segmented = "as generated" if self.segment_resolution is None else "resized bilinearly"
        return [
            ("real set", f"{self.dataset} {self.split}, {self.num_images} images (shards sha256 "
                         f"{self.shards_sha256[:16]})"),
            ("resolution", f"{w}x{h}; images {self.image_resize}, labels {self.label_resize}"),
            ("label space", self.label_space),
            ("generator weights", WEIGHTS[self.generator_weights]),
            ("latent", f"{self.latent}, seed {self.seed}"),
            ("segmenter", seg),
            ("segmented at", f"{sw}x{sh} ({segmented}); ground truth at {w}x{h}, {self.label_resize}"),
            ("label matching", self.label_matching or "-"),
            ("ignored pixels", self.ignored or "-"),
            ("FID/KID", f"{self.fid_backend}; Inception weights sha256 {self.inception_sha256 or 'absent'}; "
                        f"{self.inception_resize}; KID {self.kid_subsets} subsets of {self.kid_subset_size}"),
        ]


def shards_digest(shard_checksums: list[str]) -> str:
    return hashlib.sha256("\n".join(shard_checksums).encode()).hexdigest()


def _digest(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
