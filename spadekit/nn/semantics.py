"""The generator's input: the label map as one-hot channels plus the instance-edge channel.

Official `preprocess_input`: `nc = label_nc + (1 if the dataset has a don't-care label)` one-hot channels
(the don't-care id was mapped to `label_nc` by the loader), then the instance edges as the last channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spadekit.data.manifest import DatasetFacts


@dataclass(frozen=True)
class LabelSpace:
    """How a dataset's labels become generator input channels."""

    label_nc: int  # semantic classes, not counting don't-care
    dontcare: bool  # one more one-hot channel for the don't-care label
    use_instance: bool  # append the instance-edge channel

    @classmethod
    def from_facts(cls, facts: DatasetFacts, use_instance: bool = True) -> LabelSpace:
        return cls(facts.label_nc, facts.dontcare_id is not None, use_instance and facts.has_instances)

    @property
    def one_hot_nc(self) -> int:
        return self.label_nc + int(self.dontcare)

    @property
    def semantic_nc(self) -> int:
        """SPADE's `semantic_nc`: the generator's input channels (COCO-Stuff 184, ADE20K 151, Cityscapes 36)."""
        return self.one_hot_nc + int(self.use_instance)


def to_semantics(label: torch.Tensor, edge: torch.Tensor | None, space: LabelSpace,
                 dtype: torch.dtype = torch.float32, validate: bool = True) -> torch.Tensor:
    """Bx1xHxW int64 labels (+ Bx1xHxW edges) -> B x semantic_nc x H x W one-hot semantics. `validate=False`
    skips the range check (which waits for a GPU) for labels checked already (the training loader's)."""
    if validate and (int(label.max()) >= space.one_hot_nc or int(label.min()) < 0):
        raise ValueError(f"label ids must lie in [0, {space.one_hot_nc}), got {int(label.min())}..{int(label.max())}")
    b, _, h, w = label.shape
    semantics = torch.zeros(b, space.semantic_nc, h, w, dtype=dtype, device=label.device)
    semantics.scatter_(1, label, 1.0)
    if space.use_instance:
        if edge is None:
            raise ValueError("this label space uses instance edges, but none were given")
        semantics[:, -1:] = edge.to(dtype)
    return semantics
