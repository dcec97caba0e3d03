"""Instance-boundary maps, as the official SPADE `Pix2PixModel.get_edges`.

A pixel is an edge when it differs from its left, right, upper or lower neighbour, so every boundary is
2 px thick (one pixel on each side). The edge map is appended to the one-hot label as the last channel.
"""

from __future__ import annotations

import numpy as np
import torch


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """Edge map (float 0/1) of an int instance map shaped (H,W), (1,H,W) or (B,1,H,W); same shape."""
    return _mark(instance, torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)).float()


def instance_edges_np(instance: np.ndarray) -> np.ndarray:
    """Numpy twin of `instance_edges` (same semantics), for numpy arrays (`data show`)."""
    return _mark(instance, np.zeros(instance.shape, dtype=bool)).astype(np.float32)


def _mark(t, edge):
    """Set `edge` where `t` differs from its left, right, upper or lower neighbour (numpy or torch)."""
    dx = t[..., :, 1:] != t[..., :, :-1]
    dy = t[..., 1:, :] != t[..., :-1, :]
    edge[..., :, 1:] |= dx
    edge[..., :, :-1] |= dx
    edge[..., 1:, :] |= dy
    edge[..., :-1, :] |= dy
    return edge
