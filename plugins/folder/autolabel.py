"""Auto-labelling: photos without label maps get the label map a segmenter plugin predicts for them.

The segmenter is built with `spadekit.segmenter.build_segmenter` once per process, on first use: the source
needs its class names and palette (the dataset's label space) as soon as it is made, and each of prepare's
worker processes makes its own source, so each builds its own segmenter. Every photo is predicted at its own
size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spadekit.plugin import DatasetFacts, SpadekitError, as_label_dtype
from spadekit_plugins.folder.spec import AutoLabelOptions


class AutoLabeller:
    def __init__(self, options: AutoLabelOptions, why: str):
        """`why` says why the photos are auto-labelled, for the message when the segmenter cannot be built."""
        self.name = options.segmenter
        self.checkpoint = None if options.segmenter_ckpt is None else Path(options.segmenter_ckpt)
        self.device = options.device
        self.why = why
        self._segmenter = None

    @property
    def segmenter(self):
        if self._segmenter is None:
            from spadekit.plugin import build_segmenter

            try:
                self._segmenter = build_segmenter(self.name, self.checkpoint, device=self.device)
            except SpadekitError as err:
                raise SpadekitError(f"{self.why}, with segmenter {self.name!r} (--set segmenter=NAME "
                                    f"segmenter_ckpt=PATH): {err}") from None
        return self._segmenter

    @property
    def facts(self) -> DatasetFacts:
        """The segmenter's label space: the class ids its label maps hold."""
        return self.segmenter.facts

    def label(self, image: np.ndarray) -> np.ndarray:
        """uint8 H x W x 3 photo -> H x W class ids (uint8 or uint16)."""
        import torch

        pixels = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            ids = self.segmenter.predict(pixels, size=image.shape[:2])
        return as_label_dtype(ids[0].cpu().numpy())

    def summary_line(self) -> str:
        weights = self.checkpoint or "published weights from the torch hub cache"
        return f"labels predicted by segmenter {self.name!r} ({weights})"
