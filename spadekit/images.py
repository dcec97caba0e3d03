"""Image tensors for people: generator outputs to 8-bit pixels, and tiled grids of them.

Every picture spadekit shows (training samples, the bench grid, synth's rows of samples, the demo report's
figures) is built by `tile`: panels of one size in rows, with GAP-pixel white lines between them.
"""

from __future__ import annotations

import torch

GAP = 2  # white pixels between the panels and rows of a grid
MAX_ROWS = 8


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] to uint8 pixels in [0, 255], rounded, on the CPU; uint8 images stay as they are."""
    if images.dtype == torch.uint8:
        return images.cpu()
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def tile(rows: list[list[torch.Tensor]], gap: int = GAP) -> torch.Tensor:
    """A uint8 3 x H x W grid of `rows` (each a list of uint8 3 x h x w panels of one size), white between."""
    height, width = rows[0][0].shape[-2:]
    columns = max(len(row) for row in rows)
    grid = torch.full((3, len(rows) * (height + gap) - gap, columns * (width + gap) - gap), 255, dtype=torch.uint8)
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            top, left = r * (height + gap), c * (width + gap)
            grid[:, top : top + height, left : left + width] = panel
    return grid


def sample_grid(label_rgb: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """A grid of at most MAX_ROWS rows, label | fake | real (uint8 labels, images in [-1, 1] or uint8)."""
    panels = [label_rgb.cpu(), to_uint8(fake), to_uint8(real)]
    return tile([[panel[row] for panel in panels] for row in range(len(panels[0][:MAX_ROWS]))])
