"""The `clade` generator plugin (CLADE and CLADE-ICPE, Tan et al. TPAMI 2021) against an independent re-statement
of the reference code (tzt101/CLADE: normalization.py `ClassAffine`/`SPADELight`, architecture.py
`SPADEResnetBlock`, generator.py `SPADEGenerator`, util/cal_dist_masks.py), written here from its text: state
dicts load key for key, outputs agree on random weights; the ICPE against a flood fill; the plugin through the
trainer; its size against SPADE's."""

from __future__ import annotations

import json
from collections import deque

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spadekit.generator import (
    PAPER_CONTEXTS,
    GeneratorContext,
    build_generator,
    build_on_meta,
    count_generator_parameters,
    forward_macs,
)
from spadekit.inference import prepare
from spadekit.nn.layers import OFFICIAL_SPECTRAL_KEYS
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.nn.spade_fast import enable_fast_path
from spadekit.run_info import load_generator
from spadekit_plugins.clade.generator import CLADE, intra_class_positional_encoding

SPACES = {
    "instances": LabelSpace(6, dontcare=True, use_instance=True),  # 7 classes (one don't-care) + edges
    "no_instances": LabelSpace(5, dontcare=False, use_instance=False),
}


# --- the reference, re-stated --------------------------------------------------------------------------------


class RefClassAffine(nn.Module):
    """Reference ClassAffine, with its gather form of the lookup (the reference's `affine_gather`)."""

    def __init__(self, label_nc, affine_nc, add_dist):
        super().__init__()
        self.label_nc, self.affine_nc, self.add_dist = label_nc, affine_nc, add_dist
        self.weight = nn.Parameter(torch.zeros(label_nc, affine_nc))
        self.bias = nn.Parameter(torch.zeros(label_nc, affine_nc))
        if add_dist:
            self.dist_conv_w = nn.Conv2d(2, 1, kernel_size=1)
            self.dist_conv_b = nn.Conv2d(2, 1, kernel_size=1)

    def forward(self, x, mask, dist=None):
        n, c, h, w = x.shape
        index = mask.argmax(1).view(n, 1, h * w).expand(n, c, h * w)
        scale = torch.gather(self.weight[:, :, None].expand(self.label_nc, c, h * w), 0, index).view(n, c, h, w)
        shift = torch.gather(self.bias[:, :, None].expand(self.label_nc, c, h * w), 0, index).view(n, c, h, w)
        if self.add_dist:
            dist = F.interpolate(dist, size=(h, w), mode="nearest")
            scale = scale * (1 + self.dist_conv_w(dist))
            shift = shift * (1 + self.dist_conv_b(dist))
        return x * scale + shift


class RefSPADELight(nn.Module):
    def __init__(self, norm_nc, label_nc, use_instance, add_dist):
        super().__init__()
        self.use_instance = use_instance
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        self.class_specified_affine = RefClassAffine(label_nc, norm_nc, add_dist)
        if use_instance:
            self.inst_conv = nn.Conv2d(1, 1, kernel_size=1)

    def forward(self, x, segmap, dist=None):
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        if self.use_instance:
            inst, segmap = segmap[:, -1:], segmap[:, :-1]
        out = self.class_specified_affine(normalized, segmap, dist)
        return torch.cat([out, self.inst_conv(inst)], 1) if self.use_instance else out


class RefBlock(nn.Module):
    def __init__(self, fin, fout, label_nc, use_instance, add_dist, spectral):
        super().__init__()
        self.learned_shortcut, fmiddle, extra = fin != fout, min(fin, fout), int(use_instance)
        wrap = nn.utils.spectral_norm if spectral else (lambda conv: conv)
        self.conv_0 = wrap(nn.Conv2d(fin + extra, fmiddle, 3, padding=1))
        self.conv_1 = wrap(nn.Conv2d(fmiddle + extra, fout, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = wrap(nn.Conv2d(fin + extra, fout, 1, bias=False))
        self.norm_0 = RefSPADELight(fin, label_nc, use_instance, add_dist)
        self.norm_1 = RefSPADELight(fmiddle, label_nc, use_instance, add_dist)
        if self.learned_shortcut:
            self.norm_s = RefSPADELight(fin, label_nc, use_instance, add_dist)

    def forward(self, x, seg, dist):
        x_s = self.conv_s(self.norm_s(x, seg, dist)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, dist), 2e-1))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, dist), 2e-1))
        return x_s + dx


class RefGenerator(nn.Module):
    """Reference SPADEGenerator with norm_mode clade, segmap input, 'normal' upsampling."""

    def __init__(self, space, crop, nf, add_dist, spectral):
        super().__init__()
        self.s = crop // 32
        self.fc = nn.Conv2d(space.semantic_nc, 16 * nf, 3, padding=1)

        def block(fin, fout):
            return RefBlock(fin, fout, space.one_hot_nc, space.use_instance, add_dist, spectral)

        self.head_0, self.G_middle_0, self.G_middle_1 = (block(16 * nf, 16 * nf) for _ in range(3))
        self.up_0, self.up_1 = block(16 * nf, 8 * nf), block(8 * nf, 4 * nf)
        self.up_2, self.up_3 = block(4 * nf, 2 * nf), block(2 * nf, nf)
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, seg, dist=None):
        x = self.fc(F.interpolate(seg, size=(self.s, self.s)))
        x = self.G_middle_0(self.up(self.head_0(x, seg, dist)), seg, dist)
        x = self.G_middle_1(x, seg, dist)
        for block in (self.up_0, self.up_1, self.up_2, self.up_3):
            x = block(self.up(x), seg, dist)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 2e-1)))


def reference_icpe(label: list[list[int]]) -> list[list[list[float]]]:
    """cal_connectedComponents('norm') of one label map, by flood fill: per label but 0, per 8-connected region,
    each pixel's (row, column) offset from the region's centroid over the largest |offset| + 1e-5."""
    h, w = len(label), len(label[0])
    out = [[[0.0] * w for _ in range(h)] for _ in range(2)]
    seen = [[False] * w for _ in range(h)]
    for y0 in range(h):
        for x0 in range(w):
            if seen[y0][x0] or label[y0][x0] == 0:
                continue
            region, queue = [], deque([(y0, x0)])
            seen[y0][x0] = True
            while queue:
                y, x = queue.popleft()
                region.append((y, x))
                for ny in (y - 1, y, y + 1):
                    for nx in (x - 1, x, x + 1):
                        if 0 <= ny < h and 0 <= nx < w and not seen[ny][nx] and label[ny][nx] == label[y][x]:
                            seen[ny][nx] = True
                            queue.append((ny, nx))
            for axis in (0, 1):
                centre = sum(p[axis] for p in region) / len(region)
                largest = max(abs(p[axis] - centre) for p in region) + 1e-5
                for p in region:
                    out[axis][p[0]][p[1]] = (p[axis] - centre) / largest
    return out


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These networks are tiny: a second thread costs more in synchronization than it saves (far more on a
    shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _semantics(space, batch=2, size=64, cell=8, seed=0):
    """Blocky random labels (every class, the don't-care one too) with their class borders as edges."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, space.one_hot_nc, (batch, 1, size // cell, size // cell), generator=gen)
    label = coarse.repeat_interleave(cell, 2).repeat_interleave(cell, 3)
    edge = torch.zeros(batch, 1, size, size)
    edge[..., 1:, :] += (label[..., 1:, :] != label[..., :-1, :]).float()
    edge[..., :, 1:] += (label[..., :, 1:] != label[..., :, :-1]).float()
    return label, to_semantics(label, edge.clamp_(max=1), space)


@torch.no_grad()
def _randomize(module: nn.Module, seed=0) -> None:
    """Random class scales and biases, ICPE and instance convs, and batch-norm statistics (the rest keeps its
    init): no parameter stays at an initial value that could hide a wrong term."""
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in module.state_dict().items():
        if "class_specified_affine" in name or "inst_conv" in name:
            tensor.copy_(torch.randn(tensor.shape, generator=gen))
        elif name.endswith("running_mean"):
            tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
        elif name.endswith("running_var"):
            tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)


def _as_reference_keys(state: dict) -> dict:
    """spadekit's spectral-norm parametrization keys -> the reference's torch.nn.utils.spectral_norm keys."""
    renamed = {}
    for key, value in state.items():
        for official, ours in OFFICIAL_SPECTRAL_KEYS.items():
            if key.endswith(ours):
                key = key[: -len(ours)] + official
        renamed[key] = value
    return renamed


# --- the layer and the generator against the reference --------------------------------------------------------


@pytest.mark.parametrize("space_name", sorted(SPACES))
@pytest.mark.parametrize("add_dist", [False, True])
def test_clade_layer_matches_the_reference(space_name, add_dist):
    space = SPACES[space_name]
    torch.manual_seed(0)
    ours = CLADE(12, space.one_hot_nc, "batch", space.use_instance, add_dist)
    reference = RefSPADELight(12, space.one_hot_nc, space.use_instance, add_dist)
    _randomize(ours)
    reference.load_state_dict(ours.state_dict())  # strict: the reference's names, key for key
    label, semantics = _semantics(space)
    dist = intra_class_positional_encoding(label) if add_dist else None
    x = torch.randn(2, 12, 16, 16)
    for mode in (True, False):  # batch statistics, then running statistics
        ours.train(mode), reference.train(mode)
        expected = reference(x, semantics, dist)
        assert expected.shape == (2, 12 + space.use_instance, 16, 16)
        assert torch.equal(ours(x, semantics, dist), expected)
    with torch.no_grad():  # inference: without ICPE the batch norm folds into per-class rows (equal up to
        # float rounding), with it the instance channel's concatenation is written in place, in x's layout
        for features in (x, x.contiguous(memory_format=torch.channels_last)):
            out = ours(features, semantics, dist)
            assert out.is_contiguous(memory_format=torch.channels_last) or add_dist
            torch.testing.assert_close(out, expected, rtol=0 if add_dist else 1e-5, atol=0 if add_dist else 1e-5)


@pytest.mark.parametrize(("space_name", "add_dist", "spectral"),
                         [("instances", True, True), ("no_instances", False, False)])
def test_clade_generator_matches_the_reference(space_name, add_dist, spectral):
    space = SPACES[space_name]
    torch.manual_seed(0)
    ours = build_generator("clade", {"ngf": 2, "add_dist": add_dist, "spectral": spectral}, GeneratorContext(space, 64))
    reference = RefGenerator(space, 64, 2, add_dist, spectral)
    _randomize(ours)
    ours.eval(), reference.eval()  # spectral norm: both divide by the stored estimate, no power iteration
    reference.load_state_dict(_as_reference_keys(ours.state_dict()))  # strict
    label, semantics = _semantics(space, seed=1)
    dist = intra_class_positional_encoding(label) if add_dist else None
    with torch.no_grad():
        expected = reference(semantics, dist)
        torch.testing.assert_close(ours(semantics), expected)  # ICPE from the label map at run time
        if add_dist:
            torch.testing.assert_close(ours(semantics, input_dist=dist), expected)  # or given, as the reference
        enable_fast_path(ours)  # SPADE's inference fast path leaves CLADE as it is
        torch.testing.assert_close(ours(semantics), expected)
        torch.testing.assert_close(prepare(ours, torch.device("cpu"))(semantics), expected, rtol=1e-4, atol=1e-5)


# --- ICPE ----------------------------------------------------------------------------------------------------


def test_icpe_equals_a_flood_fill_of_the_reference_definition():
    gen = torch.Generator().manual_seed(3)
    maps = [torch.randint(0, 3, (13, 17), generator=gen),  # speckle: many regions joined only diagonally
            torch.randint(0, 4, (5, 5), generator=gen).repeat_interleave(3, 0).repeat_interleave(4, 1)[:13, :17]]
    snake = torch.zeros(13, 17, dtype=torch.long)  # one long winding region: many propagation rounds
    snake[0::2, 1:16] = 1
    for turn, row in enumerate(range(1, 13, 2)):
        snake[row, 15 if turn % 2 == 0 else 1] = 1
    maps.append(snake * 5 + 2)  # labels 2 and 7, no 0: everything encoded
    labels = torch.stack(maps)
    dist = intra_class_positional_encoding(labels[:, None])
    assert dist.shape == (3, 2, 13, 17) and dist.dtype == torch.float32
    expected = torch.tensor([reference_icpe(m.tolist()) for m in maps], dtype=torch.float64).float()
    assert torch.equal(dist, expected)
    assert dist.abs().max() < 1 and dist[0][:, maps[0] == 0].eq(0).all()  # label 0 skipped, the rest in (-1, 1)
    everything = intra_class_positional_encoding(labels, skip=None)
    assert everything[0][:, maps[0] == 0].ne(0).any()


# --- the plugin ----------------------------------------------------------------------------------------------


def test_clade_trains_through_the_trainer_and_synthesizes(tmp_path, toy_shards, cli):
    recipe = tmp_path / "clade.toml"
    recipe.write_text(f'[data]\nshards = "{toy_shards}"\n[model]\nname = "clade"\n')
    sets = {"data.load_size": 72, "data.crop_size": 64, "data.batch_size": 2, "data.num_workers": 0,
            "model.ngf": 4, "model.add_dist": True, "model.use_vae": True, "model.z_dim": 8,
            "discriminator.ndf": 8, "loss.lambda_vgg": 0.0, "train.max_steps": 2, "train.log_every": 1,
            "train.sample_every": 2, "train.checkpoint_every": 2, "train.sample_rows": 2}
    run = tmp_path / "run"
    cli("train", str(recipe), "--run-dir", str(run), *(f"--set={k}={json.dumps(v)}" for k, v in sets.items()))
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [step["step"] for step in steps] == [1, 2] and {"G_GAN", "KLD", "D_fake"} <= set(steps[0])
    generator, info = load_generator(run)
    assert generator.options.add_dist and info.space.use_instance
    _, semantics = _semantics(info.space)
    with torch.no_grad():
        image = generator(semantics, generator.encoder(torch.rand(2, 3, 64, 64) * 2 - 1)[0])
    assert image.shape == (2, 3, 64, 64) and image.isfinite().all() and image.abs().max() <= 1


def test_clade_is_smaller_and_cheaper_than_spade_at_the_paper_configurations():
    def size(name, context, **options):  # (parameters without the encoder, GMACs of one forward at batch 1)
        generator = build_on_meta(name, options, context)
        return count_generator_parameters(generator), round(forward_macs(generator, context) / 1e9, 2)

    coco, ade = PAPER_CONTEXTS["coco-stuff"], PAPER_CONTEXTS["ade20k"]
    assert size("clade", coco) == (72_505_383, 42.39)
    assert size("clade", ade) == (71_427_267, 42.21)
    assert size("spade", ade) == (96_492_483, 181.15)  # SPADE at COCO-Stuff: 97,480,899 and 191.14
    # ICPE: two 1x1 convs (2 -> 1 channels) in each of the 18 CLADE layers
    assert size("clade", ade, add_dist=True)[0] == 71_427_267 + 18 * 6
