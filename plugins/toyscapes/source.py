"""toyscapes as a DatasetSource: keys are `<split>_<index>`, each rendered on demand."""

from __future__ import annotations

from spadekit.plugin import DatasetFacts, Sample
from spadekit_plugins.toyscapes import render
from spadekit_plugins.toyscapes.spec import ToyscapesOptions


class ToyscapesSource:
    def __init__(self, options: ToyscapesOptions):
        self.options = options
        self.facts = DatasetFacts(
            name="toyscapes",
            class_names=list(render.CLASS_NAMES),
            palette=list(render.PALETTE),
            dontcare_id=None,
            has_instances=True,
            thing_ids=list(render.THING_IDS),
        )

    def splits(self) -> list[str]:
        return ["train", "val"]

    def keys(self, split: str) -> list[str]:
        count = self.options.num_train if split == "train" else self.options.num_val
        return [f"{split}_{i:06d}" for i in range(count)]

    def load(self, split: str, key: str) -> Sample:
        index = int(key.rsplit("_", 1)[1])
        out = render.render(self.options.seed, split, index, self.options.size)
        return Sample(key, out.image, out.label, out.instance)

    def style_photos(self, style: str, count: int, limit: int = 500):
        """The first `count` val images of `style` (e.g. "sunset", "noon"): photos whose style is known, for
        style-guided synthesis (the demo, the style test)."""
        return render.style_photos(style, count, self.options.seed, self.options.size, limit)
