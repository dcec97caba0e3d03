"""The official SPADE learning-rate schedule: constant, then linear decay over the last epochs."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """Factor of the base lr during 0-based `epoch`; the last epoch runs at 1/decay_epochs, as in the official code."""
    if decay_epochs == 0:
        return 1.0
    decayed = max(0, epoch - (epochs - decay_epochs))
    return max(0.0, 1.0 - decayed / decay_epochs)  # epochs past the end stay at 0, never a negative lr


def make_schedulers(optimizers: Iterable[Optimizer], epochs: int, decay_epochs: int) -> list[LambdaLR]:
    """One LambdaLR per optimizer, stepped once per epoch; a partial (not a lambda) keeps state_dict() plain."""
    factor = partial(lr_factor, epochs=epochs, decay_epochs=decay_epochs)
    return [LambdaLR(optimizer, factor) for optimizer in optimizers]
