"""`spadekit import nvlabs`: official SPADE checkpoints -> run directories.

The official checkpoints are built here from the official code's rules (key names, shapes, spectral-norm
buffers, BatchNorm running statistics), independently of our modules, and the imported networks are
compared with a functional re-implementation of the official networks' eval-mode forward pass that reads
the official state dict directly. The rules are those of NVlabs/SPADE (models/networks/*.py); the key
counts and parameter counts below were read off the official networks built from that code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from spadekit.checkpoints import latest_checkpoint, load_checkpoint
from spadekit.cli import imports
from spadekit.config import load_recipe
from spadekit.data.labelspaces import (
    ADE20K_CLASSES,
    COCO_STUFF_CLASSES,
    ade20k_facts,
    bit_colormap,
    cityscapes_facts,
    coco_stuff_facts,
)
from spadekit.data.manifest import DatasetFacts
from spadekit.errors import SpadekitError
from spadekit.nn.discriminator import MultiscaleDiscriminator
from spadekit.nvlabs import (
    OFFICIAL_DATASETS,
    NvlabsConfig,
    import_nvlabs,
    official_config,
    official_semantic_nc,
)
from spadekit.run_info import RunInfo, load_generator
from tests.conftest import run_cli

# Facts about the official networks (COCO-Stuff 256: 184 input channels), computed from the official code.
COCO_G_KEYS, COCO_G_PARAMS, COCO_G_VAE_PARAMS = 234, 97_480_899, 112_626_883
COCO_D_KEYS, COCO_D_PARAMS = 26, 5_904_514
E_KEYS, E_PARAMS = 22, 10_463_424
COCO_SHAPES = {
    "fc.weight": (1024, 184, 3, 3),
    "head_0.conv_0.weight_v": (9216,),
    "head_0.norm_0.mlp_shared.0.weight": (128, 184, 3, 3),
    "up_0.conv_s.weight_orig": (512, 1024, 1, 1),
    "up_0.conv_s.weight_v": (1024,),
    "up_0.norm_s.mlp_gamma.weight": (1024, 128, 3, 3),
    "up_3.conv_1.weight_v": (576,),
    "up_3.norm_1.param_free_norm.num_batches_tracked": (),
    "conv_img.weight": (3, 64, 3, 3),
}
BUFFERS = ("weight_u", "weight_v", "running_mean", "running_var", "num_batches_tracked")

# ------------------------------------------------------------------ the official key layout, from its rules


def _spectral_conv(layout: dict, name: str, cout: int, cin: int, k: int, bias: bool = True) -> None:
    """Old `torch.nn.utils.spectral_norm`: weight_orig, u (out), v (in*k*k); `bias` where the conv has one."""
    if bias:
        layout[f"{name}.bias"] = (cout,)
    layout[f"{name}.weight_orig"] = (cout, cin, k, k)
    layout[f"{name}.weight_u"] = (cout,)
    layout[f"{name}.weight_v"] = (cin * k * k,)


def _spade(layout: dict, name: str, norm_nc: int, label_nc: int, hidden: int, batch_norm: bool = True) -> None:
    if batch_norm:  # SynchronizedBatchNorm2d(affine=False): running statistics only
        layout[f"{name}.param_free_norm.running_mean"] = (norm_nc,)
        layout[f"{name}.param_free_norm.running_var"] = (norm_nc,)
        layout[f"{name}.param_free_norm.num_batches_tracked"] = ()
    layout[f"{name}.mlp_shared.0.weight"] = (hidden, label_nc, 3, 3)
    layout[f"{name}.mlp_shared.0.bias"] = (hidden,)
    for branch in ("mlp_gamma", "mlp_beta"):
        layout[f"{name}.{branch}.weight"] = (norm_nc, hidden, 3, 3)
        layout[f"{name}.{branch}.bias"] = (norm_nc,)


def official_g_layout(semantic_nc: int, ngf: int = 64, num_up: int = 5, hidden: int = 128,
                      vae_head: tuple[int, int] | None = None, z_dim: int = 256) -> dict[str, tuple]:
    """SPADEGenerator: fc, head_0, G_middle_0/1, up_0..up_3 (up_4 for 'most'), conv_img."""
    nf, layout = ngf, {}
    if vae_head is None:
        layout["fc.weight"], layout["fc.bias"] = (16 * nf, semantic_nc, 3, 3), (16 * nf,)
    else:
        cells = 16 * nf * vae_head[0] * vae_head[1]
        layout["fc.weight"], layout["fc.bias"] = (cells, z_dim), (cells,)
    blocks = [("head_0", 16 * nf, 16 * nf), ("G_middle_0", 16 * nf, 16 * nf), ("G_middle_1", 16 * nf, 16 * nf),
              ("up_0", 16 * nf, 8 * nf), ("up_1", 8 * nf, 4 * nf), ("up_2", 4 * nf, 2 * nf), ("up_3", 2 * nf, nf)]
    if num_up == 7:
        blocks.append(("up_4", nf, nf // 2))
    for name, fin, fout in blocks:
        fmid = min(fin, fout)
        _spectral_conv(layout, f"{name}.conv_0", fmid, fin, 3)
        _spectral_conv(layout, f"{name}.conv_1", fout, fmid, 3)
        if fin != fout:
            _spectral_conv(layout, f"{name}.conv_s", fout, fin, 1, bias=False)
        _spade(layout, f"{name}.norm_0", fin, semantic_nc, hidden)
        _spade(layout, f"{name}.norm_1", fmid, semantic_nc, hidden)
        if fin != fout:
            _spade(layout, f"{name}.norm_s", fin, semantic_nc, hidden)
    final = blocks[-1][2]
    layout["conv_img.weight"], layout["conv_img.bias"] = (3, final, 3, 3), (3,)
    return layout


def official_d_layout(input_nc: int, ndf: int = 64, n_layers: int = 4, num_d: int = 2) -> dict[str, tuple]:
    """MultiscaleDiscriminator of NLayerDiscriminators with norm_D spectralinstance (k4; middle convs bias-free)."""
    layout = {}
    for i in range(num_d):
        p = f"discriminator_{i}"
        layout[f"{p}.model0.0.weight"], layout[f"{p}.model0.0.bias"] = (ndf, input_nc, 4, 4), (ndf,)
        nf = ndf
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            _spectral_conv(layout, f"{p}.model{n}.0.0", nf, nf_prev, 4, bias=False)
        layout[f"{p}.model{n_layers}.0.weight"], layout[f"{p}.model{n_layers}.0.bias"] = (1, nf, 4, 4), (1,)
    return layout


def official_e_layout(ngf: int = 64, z_dim: int = 256) -> dict[str, tuple]:
    """ConvEncoder: six bias-free spectral 3x3 stride-2 convs (ndf = ngf), fc_mu and fc_var on 4x4 maps."""
    widths = [3, ngf, 2 * ngf, 4 * ngf, 8 * ngf, 8 * ngf, 8 * ngf]
    layout = {}
    for i in range(6):
        _spectral_conv(layout, f"layer{i + 1}.0", widths[i + 1], widths[i], 3, bias=False)
    for fc in ("fc_mu", "fc_var"):
        layout[f"{fc}.weight"], layout[f"{fc}.bias"] = (z_dim, 8 * ngf * 16), (z_dim,)
    return layout


def parameter_count(layout: dict[str, tuple]) -> int:
    return sum(math.prod(shape) for key, shape in layout.items() if not key.endswith(BUFFERS))


def random_state(layout: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    """Random weights and biases, random running statistics and random (but well-conditioned) u and v."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        leaf = key.rsplit(".", 1)[1]
        if leaf == "running_mean":
            state[key] = 0.2 * torch.randn(shape, generator=gen)
        elif leaf == "running_var":
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        elif leaf == "num_batches_tracked":
            state[key] = torch.randint(1, 10_000, shape, generator=gen)
        elif leaf == "bias":
            state[key] = 0.05 * torch.randn(shape, generator=gen)
        elif leaf in ("weight", "weight_orig"):
            fan_in = math.prod(shape[1:])
            gain = 0.3 if ".mlp_gamma." in key or ".mlp_beta." in key or key == "conv_img.weight" else 1.0
            state[key] = gain * torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    for key in layout:
        if key.endswith(".weight_orig"):
            module = key.removesuffix(".weight_orig")
            w = state[key].flatten(1)
            v = F.normalize(torch.randn(w.shape[1], generator=gen), dim=0)
            noise = F.normalize(torch.randn(w.shape[0], generator=gen), dim=0)
            state[f"{module}.weight_v"] = v
            state[f"{module}.weight_u"] = F.normalize(F.normalize(w @ v, dim=0) + 0.3 * noise, dim=0)
    assert set(state) == set(layout)
    return state


# ---------------------------------------------- the official eval-mode forward, straight from the state dict


def _weight(sd: dict, name: str) -> torch.Tensor:
    """A spectral-normed conv's weight in eval mode: W / (u . W v); torch < 1.0 saves hold W / sigma itself."""
    if f"{name}.weight_v" in sd:
        w = sd[f"{name}.weight_orig"]
        return w / torch.dot(sd[f"{name}.weight_u"], w.flatten(1) @ sd[f"{name}.weight_v"])
    return sd[f"{name}.weight"]  # a plain conv, or the W / sigma of a torch 0.4 save


def _conv(sd: dict, name: str, x: torch.Tensor, stride: int = 1, padding: int | None = None) -> torch.Tensor:
    w = _weight(sd, name)
    return F.conv2d(x, w, sd.get(f"{name}.bias"), stride, w.shape[-1] // 2 if padding is None else padding)


_CALIBRATION: list[torch.Generator] = []  # non-empty while `calibrate` runs


def ref_spade(sd: dict, p: str, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    if _CALIBRATION:  # random running statistics near the batch's own, as a trained model has
        gen, std = _CALIBRATION[0], x.std((0, 2, 3))
        sd[f"{p}.param_free_norm.running_mean"] = x.mean((0, 2, 3)) + 0.2 * std * torch.randn(len(std), generator=gen)
        sd[f"{p}.param_free_norm.running_var"] = std**2 * (0.5 + torch.rand(len(std), generator=gen))
    normalized = F.batch_norm(x, sd[f"{p}.param_free_norm.running_mean"], sd[f"{p}.param_free_norm.running_var"],
                              training=False, eps=1e-5)
    seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
    actv = F.relu(_conv(sd, f"{p}.mlp_shared.0", seg))
    return normalized * (1 + _conv(sd, f"{p}.mlp_gamma", actv)) + _conv(sd, f"{p}.mlp_beta", actv)


def ref_block(sd: dict, p: str, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    x_s = _conv(sd, f"{p}.conv_s", ref_spade(sd, f"{p}.norm_s", x, seg)) if f"{p}.norm_s.mlp_beta.bias" in sd else x
    dx = _conv(sd, f"{p}.conv_0", F.leaky_relu(ref_spade(sd, f"{p}.norm_0", x, seg), 0.2))
    dx = _conv(sd, f"{p}.conv_1", F.leaky_relu(ref_spade(sd, f"{p}.norm_1", dx, seg), 0.2))
    return x_s + dx


def ref_generator(sd: dict, seg: torch.Tensor, crop: int, aspect: float, num_up: int,
                  z: torch.Tensor | None = None) -> torch.Tensor:
    sw = crop // 2**num_up
    sh = round(sw / aspect)
    if z is None:
        x = F.conv2d(F.interpolate(seg, size=(sh, sw)), sd["fc.weight"], sd["fc.bias"], padding=1)
    else:
        x = F.linear(z, sd["fc.weight"], sd["fc.bias"]).view(z.shape[0], -1, sh, sw)

    def up(t):
        return F.interpolate(t, scale_factor=2)

    x = up(ref_block(sd, "head_0", x, seg))
    x = ref_block(sd, "G_middle_0", x, seg)
    if num_up > 5:
        x = up(x)
    x = ref_block(sd, "G_middle_1", x, seg)
    for name in ["up_0", "up_1", "up_2", "up_3"] + (["up_4"] if num_up == 7 else []):
        x = ref_block(sd, name, up(x), seg)
    return torch.tanh(F.conv2d(F.leaky_relu(x, 0.2), sd["conv_img.weight"], sd["conv_img.bias"], padding=1))


def calibrate(sd: dict, config: NvlabsConfig, num_up: int, z_dim: int | None = None) -> dict:
    """Set the random running statistics of `sd` to the scale of its activations: with statistics far from
    the activations', features grow a thousandfold over the blocks and the output saturates tanh."""
    _CALIBRATION.append(torch.Generator().manual_seed(99))
    try:
        z = None if z_dim is None else torch.randn(4, z_dim, generator=_CALIBRATION[0])
        ref_generator(sd, semantics(config, 4, seed=99), config.crop_size, config.aspect_ratio, num_up, z)
    finally:
        _CALIBRATION.clear()
    return sd


def ref_discriminator(sd: dict, x: torch.Tensor) -> list[list[torch.Tensor]]:
    results, i = [], 0
    while f"discriminator_{i}.model0.0.weight" in sd:
        p, outputs, h = f"discriminator_{i}", [], x
        n_layers = max(int(k.split(".")[1][5:]) for k in sd if k.startswith(f"{p}.model"))
        h = F.leaky_relu(_conv(sd, f"{p}.model0.0", h, 2, 2), 0.2)
        outputs.append(h)
        for n in range(1, n_layers):
            h = _conv(sd, f"{p}.model{n}.0.0", h, 1 if n == n_layers - 1 else 2, 2)
            h = F.leaky_relu(F.instance_norm(h, eps=1e-5), 0.2)
            outputs.append(h)
        outputs.append(_conv(sd, f"{p}.model{n_layers}.0", h, 1, 2))
        results.append(outputs)
        x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        i += 1
    return results


def ref_encoder(sd: dict, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = F.interpolate(image, size=(256, 256), mode="bilinear", align_corners=False)
    for i in range(1, 7):
        x = F.instance_norm(_conv(sd, f"layer{i}.0", x if i == 1 else F.leaky_relu(x, 0.2), 2, 1), eps=1e-5)
    x = F.leaky_relu(x, 0.2).flatten(1)
    return F.linear(x, sd["fc_mu.weight"], sd["fc_mu.bias"]), F.linear(x, sd["fc_var.weight"], sd["fc_var.bias"])


# ------------------------------------------------------------------------------------------ fixtures

TINY_FACTS = DatasetFacts(name="tiny", class_names=["sky", "sea", "rock", "tree", "sand"], palette=bit_colormap(5),
                          dontcare_id=255, has_instances=True, thing_ids=[2, 3])
TINY_NC = 7  # 5 classes + don't-care + instance edges
TINY = NvlabsConfig("tiny", TINY_FACTS, crop_size=64)
NGF = 4


def semantics(config: NvlabsConfig, batch: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    space = config.space
    h, w = round(config.crop_size / config.aspect_ratio), config.crop_size
    labels = torch.randint(0, space.one_hot_nc, (batch, h // 8, w // 8), generator=gen)
    labels = F.interpolate(labels[:, None].float(), size=(h, w)).long()[:, 0]  # blobs, not noise
    onehot = F.one_hot(labels, space.one_hot_nc).permute(0, 3, 1, 2).float()
    if space.use_instance:
        onehot = torch.cat([onehot, (torch.rand(batch, 1, h, w, generator=gen) < 0.1).float()], 1)
    return onehot


def write_official(folder: Path, which: str = "latest", **states: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for role, state in states.items():
        torch.save(state, folder / f"{which}_net_{role}.pth")
    return folder


def assert_image_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert (ref.abs() < 0.98).float().mean() > 0.8, "a saturated reference would hide differences"
    assert_close(ours, ref)


def assert_close(ours: torch.Tensor, ref: torch.Tensor, tol: float = 1e-4) -> None:
    """Equal within float32 error: `tol` absolute for images, relative to the largest value for features."""
    assert ours.shape == ref.shape
    diff = (ours - ref).abs().max().item() / max(1.0, ref.abs().max().item())
    assert diff < tol, f"max abs difference {diff}"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These networks are tiny: a second thread costs more in synchronization than it saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------- layout and facts


def test_independent_layout_reproduces_the_official_coco_networks():
    g = official_g_layout(184)
    assert len(g) == COCO_G_KEYS and parameter_count(g) == COCO_G_PARAMS
    assert {k: g[k] for k in COCO_SHAPES} == COCO_SHAPES
    vae = official_g_layout(184, vae_head=(8, 8))
    assert vae["fc.weight"] == (65536, 256) and parameter_count(vae) == COCO_G_VAE_PARAMS
    d = official_d_layout(187)
    assert len(d) == COCO_D_KEYS and parameter_count(d) == COCO_D_PARAMS
    assert d["discriminator_1.model3.0.0.weight_v"] == (4096,)
    e = official_e_layout()
    assert len(e) == E_KEYS and parameter_count(e) == E_PARAMS
    # official-spade.md's parameter table: ADE20K 96.49M, Cityscapes 512x256 'more' 93.05M
    assert round(parameter_count(official_g_layout(151)) / 1e6, 2) == 96.49
    assert round(parameter_count(official_g_layout(36, num_up=6)) / 1e6, 2) == 93.05


def test_official_label_spaces_give_the_official_channels():
    coco, ade, city = coco_stuff_facts(), ade20k_facts(), cityscapes_facts()
    for name, facts in zip(OFFICIAL_DATASETS, (coco, ade, city), strict=True):
        assert official_config(name).space.semantic_nc == official_semantic_nc(name)
        assert len(set(facts.class_names)) == len(facts.class_names) == len(facts.palette)
    assert len(COCO_STUFF_CLASSES) == 182 and coco.dontcare_id == 255 and coco.has_instances
    assert (COCO_STUFF_CLASSES[0], COCO_STUFF_CLASSES[90], COCO_STUFF_CLASSES[91]) == ("person", "hair brush", "banner")
    assert (COCO_STUFF_CLASSES[156], COCO_STUFF_CLASSES[181]) == ("sky-other", "wood")
    assert len(coco.thing_ids) == 80 and 11 not in coco.thing_ids
    assert coco.palette == bit_colormap(182) and ade.palette == bit_colormap(151)
    assert len(ADE20K_CLASSES) == 151 and ade.dontcare_id is None and not ade.has_instances
    assert (ADE20K_CLASSES[0], ADE20K_CLASSES[1], ADE20K_CLASSES[3], ADE20K_CLASSES[150]) == (
        "other", "wall", "sky", "flag")
    assert city.class_names[7] == "road" and city.class_names[34] == "id_34" and city.palette[7] == (128, 64, 128)
    assert city.thing_ids == list(range(24, 34)) and city.dontcare_id is None
    # PASCAL VOC colours of ids 1, 2, 3, 8, 15, 20, shifted by one as the official visualizer does
    voc = {1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 8: (64, 0, 0), 15: (192, 128, 128), 20: (0, 64, 128)}
    colours = bit_colormap(21)
    assert {i: colours[i - 1] for i in voc} == voc


# ------------------------------------------------------------------------------ numerical equivalence

CASES = {
    # name: (config, num_up, semantic_nc)
    "square": (TINY, 5, TINY_NC),
    "wide-more": (NvlabsConfig("wide", TINY_FACTS, 128, 2.0, "more"), 6, TINY_NC),
    "most": (NvlabsConfig("most", TINY_FACTS, 128, 1.0, "most"), 7, TINY_NC),
}


@pytest.mark.parametrize("case", list(CASES))
def test_imported_generator_and_discriminator_compute_the_official_forward(tmp_path, case):
    config, num_up, nc = CASES[case]
    g = calibrate(random_state(official_g_layout(nc, NGF, num_up), seed=1), config, num_up)
    d = random_state(official_d_layout(nc + 3, ndf=8, n_layers=4 if case == "square" else 3, num_d=2), seed=2)
    src = write_official(tmp_path / "ckpt", G=g, D=d)
    summary = import_nvlabs(src, config, tmp_path / "run")

    assert {f.role: f.keys for f in summary.files} == {"generator": len(g), "discriminator": len(d)}
    expected_up = {5: "normal", 6: "more", 7: "most"}[num_up]
    assert summary.options["ngf"] == NGF and summary.options["num_upsampling_layers"] == expected_up
    assert summary.options["use_vae"] is False and summary.options["input"] == "segmap"
    seg = semantics(config)
    generator, info = load_generator(tmp_path / "run")
    with torch.no_grad():
        assert_image_close(generator(seg), ref_generator(g, seg, config.crop_size, config.aspect_ratio, num_up))

    state = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert state["step"] == 0 and set(state) >= {"generator", "ema", "discriminator", "imported_from"}
    assert all(torch.equal(state["ema"][k], v) for k, v in state["generator"].items())
    discriminator = MultiscaleDiscriminator(nc + 3, **summary.discriminator)
    discriminator.load_state_dict(state["discriminator"])
    x = torch.cat([seg, torch.rand(2, 3, *seg.shape[2:]) * 2 - 1], 1)
    with torch.no_grad():
        for ours, ref in zip(discriminator.eval()(x), ref_discriminator(d, x), strict=True):
            for a, b in zip(ours, ref, strict=True):
                assert_close(a, b)


def test_run_directory_holds_run_info_recipe_and_provenance(tmp_path):
    g = random_state(official_g_layout(TINY_NC, NGF), seed=3)
    src = write_official(tmp_path / "ckpt", G=g)
    summary = import_nvlabs(src, TINY, tmp_path / "run")
    info = RunInfo.load(tmp_path / "run")
    assert info.generator == "spade" and info.facts == TINY_FACTS and info.crop_size == 64
    assert info.origin.startswith("spadekit import nvlabs tiny ") and str(src.resolve()) in info.origin
    assert info.context.semantic_nc == TINY_NC
    recipe = load_recipe(tmp_path / "run" / "config.toml")
    assert recipe.model.name == "spade" and recipe.model.options["ngf"] == NGF
    assert (recipe.data.crop_size, recipe.data.load_size, recipe.data.preprocess) == (64, 286, "resize_and_crop")
    assert recipe.train.init_from == (tmp_path / "run").resolve() and recipe.data.use_instance
    assert recipe.bench.segmenter is None  # a label space of one's own has no paper segmenter
    state = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert "discriminator" not in state
    source = state["imported_from"]["generator"]
    assert source["path"] == str((src / "latest_net_G.pth").resolve()) and len(source["sha256"]) == 64
    assert any("no discriminator" in note for note in summary.notes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "run"]  # no staging folder left behind


def test_vae_generator_and_encoder_compute_the_official_forward(tmp_path):
    z_dim = 8
    g = calibrate(random_state(official_g_layout(TINY_NC, NGF, vae_head=(2, 2), z_dim=z_dim), seed=4), TINY, 5, z_dim)
    e = random_state(official_e_layout(NGF, z_dim), seed=5)
    summary = import_nvlabs(write_official(tmp_path / "ckpt", G=g, E=e), TINY, tmp_path / "run")
    assert summary.options["use_vae"] is True and summary.options["z_dim"] == z_dim
    assert {f.role: f.keys for f in summary.files} == {"generator": len(g), "encoder": len(e)}
    generator, _ = load_generator(tmp_path / "run")
    seg, z = semantics(TINY), torch.randn(2, z_dim)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert_image_close(generator(seg, z), ref_generator(g, seg, 64, 1.0, 5, z))
        for ours, ref in zip(generator.encoder(image), ref_encoder(e, image), strict=True):
            assert_close(ours, ref)


def test_linear_head_without_encoder_imports_as_noise_input(tmp_path):
    g = random_state(official_g_layout(TINY_NC, NGF, vae_head=(2, 2), z_dim=16), seed=6)
    summary = import_nvlabs(write_official(tmp_path / "ckpt", G=g), TINY, tmp_path / "run")
    assert summary.options["input"] == "noise" and summary.options["use_vae"] is False
    generator, _ = load_generator(tmp_path / "run")
    assert generator.encoder is None and generator.z_dim == 16


def test_an_encoder_beside_a_label_map_generator_is_left_out(tmp_path):
    g = random_state(official_g_layout(TINY_NC, NGF), seed=13)
    e = random_state(official_e_layout(NGF, 8), seed=14)
    summary = import_nvlabs(write_official(tmp_path / "ckpt", G=g, E=e), TINY, tmp_path / "run")
    assert summary.options["use_vae"] is False and [f.role for f in summary.files] == ["generator"]
    assert any("latest_net_E.pth was left out" in note for note in summary.notes)


def test_dataparallel_prefix_is_stripped(tmp_path):
    g = calibrate(random_state(official_g_layout(TINY_NC, NGF), seed=7), TINY, 5)
    src = write_official(tmp_path / "ckpt", G={f"module.{k}": v for k, v in g.items()})
    summary = import_nvlabs(src, TINY, tmp_path / "run")
    assert any("module." in note for note in summary.notes)
    generator, _ = load_generator(tmp_path / "run")
    seg = semantics(TINY)
    with torch.no_grad():
        assert_image_close(generator(seg), ref_generator(g, seg, 64, 1.0, 5))


def test_torch_0_4_saves_without_weight_v_are_completed(tmp_path):
    g = random_state(official_g_layout(TINY_NC, NGF), seed=8)
    old = {k: v for k, v in g.items() if not k.endswith((".weight_v", "num_batches_tracked"))}
    summary = import_nvlabs(write_official(tmp_path / "plain", G=old), TINY, tmp_path / "run")
    assert any("weight_v" in note for note in summary.notes)
    assert any("num_batches_tracked" in note for note in summary.notes)
    state = load_checkpoint(latest_checkpoint(tmp_path / "run"))["generator"]
    w, u = g["up_1.conv_0.weight_orig"], g["up_1.conv_0.weight_u"]
    v = F.normalize(w.flatten(1).t() @ u, dim=0)
    assert_close(state["up_1.conv_0.parametrizations.weight.0._v"], v, 1e-6)

    # torch 0.4 also saved the normalized weight W / sigma it used in eval mode: the import keeps that sigma
    legacy = dict(old)
    for key in [k for k in old if k.endswith(".weight_orig")]:
        module = key.removesuffix("_orig")
        legacy[module] = g[key] / (1.7 * torch.dot(g[f"{module}_u"], g[key].flatten(1) @ g[f"{module}_v"]))
    calibrate(legacy, TINY, 5)
    import_nvlabs(write_official(tmp_path / "legacy", G=legacy), TINY, tmp_path / "run2")
    generator, _ = load_generator(tmp_path / "run2")
    seg = semantics(TINY)
    with torch.no_grad():
        assert_image_close(generator(seg), ref_generator(legacy, seg, 64, 1.0, 5))


# ----------------------------------------------------------------------------------------- user errors


@pytest.fixture(scope="module")
def tiny_g() -> dict[str, torch.Tensor]:
    return random_state(official_g_layout(TINY_NC, NGF), seed=9)


def _import_error(tmp_path: Path, g: dict, **extra) -> str:
    src = write_official(tmp_path / "ckpt", G=g, **extra)
    with pytest.raises(SpadekitError) as err:
        import_nvlabs(src, TINY, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    return str(err.value)


def test_an_extra_key_is_named(tmp_path, tiny_g):
    message = _import_error(tmp_path, {**tiny_g, "up_2.conv_9.weight": torch.zeros(3)})
    assert "up_2.conv_9.weight" in message and "latest_net_G.pth" in message


def test_a_missing_key_is_named_as_the_official_key(tmp_path, tiny_g):
    message = _import_error(tmp_path, {k: v for k, v in tiny_g.items() if k != "up_0.conv_s.weight_u"})
    assert "up_0.conv_s.weight_u" in message and "latest_net_G.pth" in message


def test_a_wrong_shape_names_key_and_both_shapes(tmp_path, tiny_g):
    message = _import_error(tmp_path, {**tiny_g, "up_2.norm_1.mlp_beta.bias": torch.zeros(5)})
    assert "up_2.norm_1.mlp_beta.bias" in message and "(5,)" in message and "(8,)" in message
    assert "latest_net_G.pth" in message


def test_a_checkpoint_of_another_dataset_names_its_channels(tmp_path):
    g = random_state(official_g_layout(36, NGF), seed=10)
    message = _import_error(tmp_path, g)
    assert "36 input channels" in message and "cityscapes" in message and "--dataset" in message


def test_a_bad_discriminator_key_is_named(tmp_path, tiny_g):
    d = random_state(official_d_layout(TINY_NC + 3, 8, 3), seed=11)
    d.pop("discriminator_1.model2.0.0.weight_orig")
    message = _import_error(tmp_path, tiny_g, D=d)
    assert "discriminator_1.model2.0.0.weight_orig" in message and "latest_net_D.pth" in message


def test_missing_folder_and_missing_generator_name_what_is_there(tmp_path, tiny_g):
    with pytest.raises(SpadekitError, match="nowhere does not exist"):
        import_nvlabs(tmp_path / "nowhere", TINY, tmp_path / "run")
    src = write_official(tmp_path / "ckpt", which="40", G=tiny_g)
    torch.save({}, src / "latest_net_D.pth")
    with pytest.raises(SpadekitError) as err:
        import_nvlabs(src, TINY, tmp_path / "run")
    message = str(err.value)
    assert "latest_net_G.pth" in message and "40_net_G.pth, latest_net_D.pth" in message and "--which 40" in message


def test_non_empty_out_is_refused_without_force_and_replaced_with_it(tmp_path, tiny_g):
    src = write_official(tmp_path / "ckpt", G=tiny_g)
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    with pytest.raises(SpadekitError, match="not empty.*--force"):
        import_nvlabs(src, TINY, out)
    assert (out / "precious.txt").read_text() == "keep"
    with pytest.raises(SpadekitError, match="holds the checkpoints"):
        import_nvlabs(src, TINY, tmp_path, force=True)
    import_nvlabs(src, TINY, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.toml", "run.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "run"]


def test_a_failure_while_writing_leaves_no_run_directory(tmp_path, tiny_g, monkeypatch):
    import spadekit.nvlabs.importer as nvlabs

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(nvlabs, "save_step_checkpoint", disk_full)
    src = write_official(tmp_path / "ckpt", G=tiny_g)
    with pytest.raises(OSError, match="disk full"):
        import_nvlabs(src, TINY, tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


# -------------------------------------------------------------------------------------- command line

runner = CliRunner()


def test_cli_error_paths(tmp_path, tiny_g):
    result = runner.invoke(imports.app, ["nvlabs", str(tmp_path / "nowhere"), "--dataset", "coco", "--out",
                                         str(tmp_path / "run")])
    assert isinstance(result.exception, SpadekitError) and "nowhere does not exist" in str(result.exception)
    src = write_official(tmp_path / "ckpt", which="10", G=tiny_g)
    result = runner.invoke(imports.app, ["nvlabs", str(src), "--dataset", "coco", "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, SpadekitError) and "10_net_G.pth" in str(result.exception)
    result = runner.invoke(imports.app, ["nvlabs", str(src), "--dataset", "flickr", "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, SpadekitError) and "coco, ade20k or cityscapes" in str(result.exception)


def test_cli_error_is_one_sentence_in_a_subprocess(tmp_path, tiny_g):
    src = write_official(tmp_path / "ckpt", which="10", G=tiny_g)
    proc = run_cli("import", "nvlabs", str(src), "--dataset", "ade20k", "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "latest_net_G.pth" in proc.stderr and "10_net_G.pth" in proc.stderr


def test_full_size_coco_import_through_the_cli(tmp_path):
    """The real `--dataset coco` path once, at full size (97.5M parameters), without a forward pass."""
    layout = official_g_layout(184)
    gen = torch.Generator().manual_seed(12)
    g = {k: (torch.randint(0, 9, s, generator=gen) if k.endswith("tracked") else torch.randn(s, generator=gen))
         for k, s in layout.items()}
    src = write_official(tmp_path / "coco_pretrained", G=g)
    result = runner.invoke(imports.app, ["nvlabs", str(src), "--dataset", "coco", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "97.48M" in result.output and "fine-tune: spadekit train" in result.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["options"]["ngf"] == 64 and info["facts"]["name"] == "coco" and info["crop_size"] == 256
    state = load_checkpoint(latest_checkpoint(tmp_path / "run"))["generator"]
    assert len(state) == COCO_G_KEYS
    assert torch.equal(state["up_0.conv_s.parametrizations.weight.0._v"], g["up_0.conv_s.weight_v"])
    running_var = "head_0.norm_1.param_free_norm.running_var"
    assert torch.equal(state[running_var], g[running_var])
