"""SPADE at inference from window tables (spadekit.nn.spade_tables) equals the dense convolutions."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from spadekit.nn import label_layout
from spadekit.nn.label_layout import layout_of
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.nn.spade import SPADE, resize_segmap
from spadekit.nn.spade_fast import enable_fast_path
from spadekit.nn.spade_tables import tabled_spade


def _painted(batch: int, size: int, space: LabelSpace, cells: int = 4, seed: int = 0, edges: bool = True):
    """Rectangles of random classes with a diagonal stripe of another (a painted mask), instance edges on
    their borders."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, space.one_hot_nc, (batch, 1, cells, cells), generator=gen)
    label = F.interpolate(coarse.float(), size=(size, size), mode="nearest").long()
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    label[:, :, (x - y).abs() < size // 10] = int(torch.randint(0, space.one_hot_nc, (1,), generator=gen))
    if not edges:
        return to_semantics(label, None, space)
    edge = torch.zeros(batch, 1, size, size)
    edge[..., 1:, :] += (label[..., 1:, :] != label[..., :-1, :]).float()
    edge[..., :, 1:] += (label[..., :, 1:] != label[..., :, :-1]).float()
    return to_semantics(label, edge.clamp_(max=1), space)


def _noise(space: LabelSpace, size: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return to_semantics(torch.randint(0, space.label_nc, (1, 1, size, size), generator=gen),
                        torch.zeros(1, 1, size, size), space)


def _spade(space: LabelSpace, channels: int = 24, norm: str = "batch", kernel_size: int = 3) -> SPADE:
    torch.manual_seed(0)
    spade = SPADE(channels, space.semantic_nc, norm, kernel_size, hidden=16, one_hot_nc=space.one_hot_nc).eval()
    for conv in (spade.mlp_shared[0], spade.mlp_gamma, spade.mlp_beta):
        torch.nn.init.normal_(conv.weight, std=0.1)
        torch.nn.init.normal_(conv.bias, std=0.1)
    if norm != "instance":
        torch.nn.init.normal_(spade.param_free_norm.running_mean)
        torch.nn.init.uniform_(spade.param_free_norm.running_var, 0.5, 2.0)
    return spade


def _both(spade: SPADE, x: torch.Tensor, semantics: torch.Tensor):
    """(the plain block's output, the tables' output or None)."""
    with torch.no_grad():
        dense = spade(x.clone(), semantics)
        layout = layout_of(semantics, x.shape[-2:], spade.one_hot_nc)
        return dense, tabled_spade(spade, x.contiguous(memory_format=torch.channels_last), layout)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("edges", [True, False])
def test_tables_equal_the_dense_block(kernel_size, norm, edges):
    space = LabelSpace(40, dontcare=True, use_instance=edges)
    spade = _spade(space, norm=norm, kernel_size=kernel_size)
    semantics = _painted(2, 64, space, edges=edges)
    dense, tables = _both(spade, torch.randn(2, 24, 64, 64), semantics)
    assert tables is not None and tables.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(tables, dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [32, 40])  # a strided view of the semantics, and a nearest interpolation
def test_tables_at_smaller_feature_maps_read_the_resized_semantics(size):
    space = LabelSpace(40, dontcare=False, use_instance=True)
    spade = _spade(space)
    semantics = _painted(1, 96, space, cells=3)
    dense, tables = _both(spade, torch.randn(1, 24, size, size), semantics)
    assert tables is not None
    torch.testing.assert_close(tables, dense, rtol=1e-5, atol=1e-5)
    if 96 % size == 0:  # the generator's pyramid hands blocks a strided view: the same layout, from the full labels
        view = resize_segmap(semantics, (size, size))
        assert layout_of(view, (size, size), 40) is layout_of(semantics, (size, size), 40)


def test_tables_decline_where_they_cannot_gain_or_key_exactly():
    space = LabelSpace(40, dontcare=False, use_instance=True)
    spade = _spade(space)
    noise = _noise(space)  # a new window at almost every pixel
    assert _both(spade, torch.randn(1, 24, 32, 32), noise)[1] is None
    soft = _painted(1, 32, space).clone()
    soft[:, -1] *= 0.5  # other channels that are not 0/1 cannot be keyed exactly
    assert _both(spade, torch.randn(1, 24, 32, 32), soft)[1] is None


def test_distinct_rows_are_exact_beyond_one_64_bit_key():
    gen = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 200, (300, 30), generator=gen)[torch.randint(0, 40, (2000,), generator=gen)]
    rows[::7, -1] = 1  # rows that differ only in the last column
    inverse, count = label_layout.distinct_rows([(column, 8) for column in rows.unbind(1)])  # 240 bits a row
    unique, expected = torch.unique(rows, dim=0, return_inverse=True)
    assert count == len(unique)
    # the same grouping: equal rows share an index, different rows do not
    assert torch.equal(inverse[:, None] == inverse[None], expected[:, None] == expected[None])


def test_the_fast_block_takes_the_tables_and_falls_back_alike():
    space = LabelSpace(40, dontcare=False, use_instance=True)
    spade = _spade(space)
    fast = enable_fast_path(copy.deepcopy(spade))
    for semantics in (_painted(1, 32, space), _noise(space)):
        x = torch.randn(1, 24, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(fast(x.clone(), semantics), spade(x.clone(), semantics), rtol=1e-5, atol=1e-5)


def test_layouts_are_shared_within_a_forward_and_redone_when_the_semantics_change():
    space = LabelSpace(40, dontcare=False, use_instance=True)
    semantics = _painted(1, 32, space)
    first = layout_of(semantics, (16, 16), space.one_hot_nc)
    assert layout_of(semantics, (16, 16), space.one_hot_nc) is first
    semantics[:, :, :8] = 0  # modified in place: its layouts are worked out again
    assert layout_of(semantics, (16, 16), space.one_hot_nc) is not first
    key = id(semantics)
    del semantics
    assert key not in label_layout._CACHE  # dropped with the tensor


def test_tables_follow_weights_changed_in_place():
    space = LabelSpace(40, dontcare=False, use_instance=True)
    spade = _spade(space)
    semantics, x = _painted(1, 64, space), torch.randn(1, 24, 64, 64)
    assert _both(spade, x, semantics)[1] is not None  # tables made and kept
    with torch.no_grad():
        spade.mlp_gamma.weight.mul_(2)
        spade.param_free_norm.running_mean.add_(1)
    dense, tables = _both(spade, x, semantics)
    torch.testing.assert_close(tables, dense, rtol=1e-5, atol=1e-5)


def test_tables_on_a_uniform_map_and_a_wide_one():
    space = LabelSpace(40, dontcare=False, use_instance=True)
    spade = _spade(space)
    uniform = to_semantics(torch.full((1, 1, 32, 32), 7), torch.zeros(1, 1, 32, 32), space)  # no border at all
    wide = _painted(2, 64, space)[..., :32, :]  # 32 rows, 64 columns
    for semantics in (uniform, wide.contiguous()):
        x = torch.randn(semantics.shape[0], 24, *semantics.shape[-2:])
        dense, tables = _both(spade, x, semantics)
        assert tables is not None
        torch.testing.assert_close(tables, dense, rtol=1e-5, atol=1e-5)
