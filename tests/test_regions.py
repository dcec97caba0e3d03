"""SPADE's modulation from per-class tables inside uniform regions equals the dense convolutions."""

from __future__ import annotations

import copy

import pytest
import torch

from spadekit.nn.regions import interior, region_modulation
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.nn.spade import SPADE
from spadekit.nn.spade_fast import enable_fast_path


def _regions(batch: int, size: int, space: LabelSpace, seed: int = 0) -> torch.Tensor:
    """Large rectangles of random classes (a painted mask), instance edges on their borders."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, space.one_hot_nc, (batch, 1, 3, 3), generator=gen)
    label = torch.nn.functional.interpolate(coarse.float(), size=(size, size), mode="nearest").long()
    edge = torch.zeros(batch, 1, size, size)
    edge[..., 1:, :] += (label[..., 1:, :] != label[..., :-1, :]).float()
    edge[..., :, 1:] += (label[..., :, 1:] != label[..., :, :-1]).float()
    return to_semantics(label, edge.clamp_(max=1), space)


def test_interior_is_the_pixels_whose_window_is_one_label_inside_the_image():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :, 5:] = 1
    inside = interior(labels, None, 1)[0]
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[1:7, 1:4] = True  # columns 0..3 are class 0; column 4 touches column 5's class 1
    expected[1:7, 6] = True  # class 1 spans columns 5..7; column 7 touches the image border
    assert torch.equal(inside, expected)
    rest = torch.zeros(1, 1, 8, 8)
    rest[0, 0, 3, 2] = 1  # an instance edge inside class 0's region
    assert not interior(labels, rest, 1)[0, 2:5, 1:4].any()


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("dontcare", [False, True])
def test_spade_with_region_tables_equals_the_dense_convolutions(kernel_size, dontcare):
    torch.manual_seed(0)
    space = LabelSpace(70, dontcare=dontcare, use_instance=True)
    spade = SPADE(32, space.semantic_nc, "batch", kernel_size, hidden=16, one_hot_nc=space.one_hot_nc).eval()
    torch.nn.init.normal_(spade.param_free_norm.running_mean)
    x = torch.randn(2, 32, 96, 96)
    semantics = _regions(2, 96, space)
    with torch.no_grad():
        dense = spade(x.clone(), semantics)
        on_fast_path = enable_fast_path(copy.deepcopy(spade))
        on_fast_path.use_one_hot_conv = True
        fast = on_fast_path(x.clone(), semantics)
    conv = spade.mlp_shared[0]
    actv = torch.relu(conv(semantics))
    assert region_modulation(semantics, actv, conv, spade.mlp_gamma, spade.mlp_beta, space.one_hot_nc) is not None
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-5)


def test_too_few_interior_pixels_fall_back_to_the_convolutions():
    space = LabelSpace(70, dontcare=False, use_instance=False)
    noise = torch.randint(0, 70, (1, 1, 16, 16))  # a new class almost every pixel
    semantics = to_semantics(noise, None, space)
    conv = torch.nn.Conv2d(space.semantic_nc, 8, 3, padding=1)
    actv = torch.relu(conv(semantics))
    gamma, beta = torch.nn.Conv2d(8, 4, 3, padding=1), torch.nn.Conv2d(8, 4, 3, padding=1)
    assert region_modulation(semantics, actv, conv, gamma, beta, space.one_hot_nc) is None
