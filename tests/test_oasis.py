"""The `oasis` plugin and `spadekit import oasis` against the reference code (boschresearch/OASIS).

Everything here is built from the reference's rules, independently of the plugin: the key names and shapes of
the files its `utils.save_networks` writes (`torch.save(net.state_dict())` of OASIS_Generator and
OASIS_Discriminator with the old `torch.nn.utils.spectral_norm`), an eval-mode forward of its generator and
discriminator reading those state dicts directly, its label layout (the don't-care class first), its losses
and LabelMix, written as functions of OASIS-layout tensors. The plugin and the import must reproduce them on
spadekit's layout.
"""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spadekit import registry
from spadekit.checkpoints import latest_checkpoint, load_checkpoint
from spadekit.config import load_recipe
from spadekit.errors import SpadekitError
from spadekit.generator import GeneratorContext, build_generator, build_on_meta, count_parameters
from spadekit.method import unwrap
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.oasis import import_oasis
from spadekit.oasis.importer import map_state
from spadekit.run_info import RunInfo, load_generator
from spadekit.synthesis import seeded
from spadekit.train.build import training_method
from spadekit.train.objective import GeneratorStep

COCO_SPACE = LabelSpace(182, dontcare=True, use_instance=False)  # 183 channels, "unlabeled" last
ADE_SPACE = LabelSpace(151, dontcare=False, use_instance=False)  # 151 channels, "other" first
# The reference's counts (its print_parameter_count sums the parameters of every Conv2d: all of them), ADE20K
# at 256x256 with its defaults; derived by hand in test_parameter_counts_are_the_references.
ADE_G_PARAMS, ADE_D_PARAMS = 74_314_691, 22_258_904
BUFFERS = ("weight_u", "weight_v", "running_mean", "running_var", "num_batches_tracked")


@pytest.fixture(autouse=True)
def _quick_cpu():
    """The reference's init (xavier gain 0.02) gives tiny activations, which run slowly as denormals on a CPU;
    flushing them changes nothing compared here. One thread: these networks are small, and on a shared machine
    a second thread's barrier waits cost more than it computes (a tiny conv: 50 ms on two threads, 0.2 ms on one)."""
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


# ------------------------------------------------------------------- the reference's key layout, from its rules


def _spectral(layout: dict, name: str, cout: int, cin: int, k: int, bias: bool = True) -> None:
    """Old `torch.nn.utils.spectral_norm`: weight_orig, weight_u (out), weight_v (in * k * k), and the bias."""
    if bias:
        layout[f"{name}.bias"] = (cout,)
    layout[f"{name}.weight_orig"] = (cout, cin, k, k)
    layout[f"{name}.weight_u"] = (cout,)
    layout[f"{name}.weight_v"] = (cin * k * k,)


def oasis_g_layout(semantic_nc: int, ch: int = 64, z_dim: int = 64, ks: int = 3, hidden: int = 128) -> dict:
    """OASIS_Generator: fc on [z, label], body.0..5 (ResnetBlock_with_SPADE, SPADE with a SynchronizedBatchNorm2d
    `first_norm` and 128 hidden channels), conv_img."""
    cond = semantic_nc + z_dim
    widths = [16 * ch, 16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, ch]
    layout = {"fc.weight": (16 * ch, cond, 3, 3), "fc.bias": (16 * ch,)}
    for i in range(6):
        fin, fout = widths[i], widths[i + 1]
        fmid = min(fin, fout)
        _spectral(layout, f"body.{i}.conv_0", fmid, fin, 3)
        _spectral(layout, f"body.{i}.conv_1", fout, fmid, 3)
        if fin != fout:
            _spectral(layout, f"body.{i}.conv_s", fout, fin, 1, bias=False)
        for norm, nc in (("norm_0", fin), ("norm_1", fmid)) + ((("norm_s", fin),) if fin != fout else ()):
            p = f"body.{i}.{norm}"
            layout[f"{p}.first_norm.running_mean"] = layout[f"{p}.first_norm.running_var"] = (nc,)
            layout[f"{p}.first_norm.num_batches_tracked"] = ()
            layout[f"{p}.mlp_shared.0.weight"], layout[f"{p}.mlp_shared.0.bias"] = (hidden, cond, ks, ks), (hidden,)
            for branch in ("mlp_gamma", "mlp_beta"):
                layout[f"{p}.{branch}.weight"], layout[f"{p}.{branch}.bias"] = (nc, hidden, ks, ks), (nc,)
    layout["conv_img.weight"], layout["conv_img.bias"] = (3, ch, 3, 3), (3,)
    return layout


def oasis_d_layout(semantic_nc: int, c: int = 64) -> dict:
    """OASIS_Discriminator: body_down.0..5 over [3, 128, 128, 256, 256, 512, 512] (c = 64), body_up.0..5 back
    to 64 channels taking the skips, layer_up_last to semantic_nc + 1. conv1 is Sequential(conv) in the first
    block, Sequential(LeakyReLU, conv) going down, Sequential(LeakyReLU, Upsample, conv) going up."""
    down = [3, 2 * c, 2 * c, 4 * c, 4 * c, 8 * c, 8 * c]
    up = [(down[6], down[5])] + [(2 * down[6 - i], down[5 - i]) for i in range(1, 5)] + [(2 * down[1], c)]
    layout = {}
    blocks = [(f"body_down.{i}", down[i], down[i + 1], 0 if i == 0 else 1) for i in range(6)]
    blocks += [(f"body_up.{i}", fin, fout, 2) for i, (fin, fout) in enumerate(up)]
    for name, fin, fout, conv1 in blocks:
        _spectral(layout, f"{name}.conv1.{conv1}", fout, fin, 3)
        _spectral(layout, f"{name}.conv2.1", fout, fout, 3)
        if fin != fout:
            _spectral(layout, f"{name}.conv_s", fout, fin, 1)
    layout["layer_up_last.weight"], layout["layer_up_last.bias"] = (semantic_nc + 1, c, 1, 1), (semantic_nc + 1,)
    return layout


def parameters_of(layout: dict) -> int:
    return sum(math.prod(shape) for key, shape in layout.items() if not key.endswith(BUFFERS))


def random_state(layout: dict, seed: int) -> dict[str, torch.Tensor]:
    """Random weights; u near W's top left singular direction so that u^T W v is a fair sigma."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        leaf = key.rsplit(".", 1)[1]
        if leaf == "running_mean":
            state[key] = 0.1 * torch.randn(shape, generator=gen)
        elif leaf == "running_var":
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        elif leaf == "num_batches_tracked":
            state[key] = torch.zeros((), dtype=torch.long)  # the reference's SynchronizedBatchNorm2d never counts
        elif leaf == "bias":
            state[key] = 0.05 * torch.randn(shape, generator=gen)
        elif leaf in ("weight", "weight_orig"):
            gain = 0.5 if ".mlp_gamma." in key or ".mlp_beta." in key else 1.0
            state[key] = gain * torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]))
    for key in layout:
        if key.endswith(".weight_orig"):
            module, w = key.removesuffix(".weight_orig"), state[key].flatten(1)
            v = F.normalize(torch.randn(w.shape[1], generator=gen), dim=0)
            state[f"{module}.weight_v"] = v
            noise = F.normalize(torch.randn(w.shape[0], generator=gen), dim=0)
            state[f"{module}.weight_u"] = F.normalize(F.normalize(w @ v, dim=0) + 0.3 * noise, dim=0)
    assert set(state) == set(layout)
    return state


# ----------------------------------------------- the reference's eval-mode forward, straight from a state dict


_TRAINING: list[bool] = []  # while non-empty, the training forward: batch statistics, a power iteration each


def _w(sd: dict, name: str) -> torch.Tensor:
    """The old spectral-norm hook: W / (u . W v); in training first v = normalize(W^T u), u = normalize(W v),
    stored back."""
    if f"{name}.weight_orig" not in sd:
        return sd[f"{name}.weight"]
    w = sd[f"{name}.weight_orig"]
    if _TRAINING:
        sd[f"{name}.weight_v"] = F.normalize(w.flatten(1).t() @ sd[f"{name}.weight_u"], dim=0, eps=1e-12)
        sd[f"{name}.weight_u"] = F.normalize(w.flatten(1) @ sd[f"{name}.weight_v"], dim=0, eps=1e-12)
    return w / torch.dot(sd[f"{name}.weight_u"], w.flatten(1) @ sd[f"{name}.weight_v"])


def _conv(sd: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    w = _w(sd, name)
    return F.conv2d(x, w, sd.get(f"{name}.bias"), padding=w.shape[-1] // 2)


_RESIZED: dict = {}  # (id of the noise + label tensor, size) -> it resized: one copy per size, not per SPADE


def _nearest(seg: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    key = (id(seg), size)
    if key not in _RESIZED:
        _RESIZED[key] = (seg, F.interpolate(seg, size=size, mode="nearest"))  # seg kept: its id stays its own
    return _RESIZED[key][1]


_CALIBRATE: list[bool] = []  # while non-empty, SPADE's running statistics are set to the batch's own


def ref_spade(sd: dict, p: str, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    if _CALIBRATE:  # as a trained model's: near the activations' statistics
        sd[f"{p}.first_norm.running_mean"] = x.mean((0, 2, 3)) * 1.05
        sd[f"{p}.first_norm.running_var"] = x.var((0, 2, 3)) * 0.9
    normalized = F.batch_norm(x, sd[f"{p}.first_norm.running_mean"], sd[f"{p}.first_norm.running_var"],
                              training=bool(_TRAINING), momentum=0.1, eps=1e-5)
    seg = _nearest(seg, tuple(x.shape[2:]))
    actv = F.relu(_conv(sd, f"{p}.mlp_shared.0", seg))
    return normalized * (1 + _conv(sd, f"{p}.mlp_gamma", actv)) + _conv(sd, f"{p}.mlp_beta", actv)


def ref_generator(sd: dict, label: torch.Tensor, z: torch.Tensor, crop: int, aspect: float = 1.0) -> torch.Tensor:
    """OASIS_Generator.forward in eval mode on the OASIS-layout one-hot `label`, noise z (B x z_dim)."""
    b, _, h, w = label.shape
    seg = torch.cat((z.view(b, -1, 1, 1).expand(b, z.shape[1], h, w), label), 1)
    init_w = crop // 2**5
    x = _conv(sd, "fc", F.interpolate(seg, size=(round(init_w / aspect), init_w)))
    for i in range(6):
        p = f"body.{i}"
        x_s = _conv(sd, f"{p}.conv_s", ref_spade(sd, f"{p}.norm_s", x, seg)) if f"{p}.norm_s.mlp_beta.bias" in sd else x
        dx = _conv(sd, f"{p}.conv_0", F.leaky_relu(ref_spade(sd, f"{p}.norm_0", x, seg), 0.2))
        dx = _conv(sd, f"{p}.conv_1", F.leaky_relu(ref_spade(sd, f"{p}.norm_1", dx, seg), 0.2))
        x = x_s + dx
        if i < 5:
            x = F.interpolate(x, scale_factor=2)
    _RESIZED.clear()
    return torch.tanh(_conv(sd, "conv_img", F.leaky_relu(x, 0.2)))


def ref_discriminator(sd: dict, image: torch.Tensor) -> torch.Tensor:
    """OASIS_Discriminator.forward (eval-mode spectral norm) straight from its state dict."""
    def block(name: str, x: torch.Tensor, kind: str) -> torch.Tensor:  # kind: first | down | up
        conv1 = {"first": "conv1.0", "down": "conv1.1", "up": "conv1.2"}[kind]
        h = x if kind == "first" else F.leaky_relu(x, 0.2)
        if kind == "up":
            h = F.interpolate(h, scale_factor=2)
        dx = _conv(sd, f"{name}.conv2.1", F.leaky_relu(_conv(sd, f"{name}.{conv1}", h), 0.2))
        shortcut = f"{name}.conv_s.weight_orig" in sd
        if kind == "up":
            s = F.interpolate(x, scale_factor=2)
            s = _conv(sd, f"{name}.conv_s", s) if shortcut else s
            return s + dx
        dx = F.avg_pool2d(dx, 2)
        if kind == "first":
            s = F.avg_pool2d(x, 2)
            return (_conv(sd, f"{name}.conv_s", s) if shortcut else s) + dx
        s = _conv(sd, f"{name}.conv_s", x) if shortcut else x
        return F.avg_pool2d(s, 2) + dx

    skips, x = [], image
    for i in range(6):
        x = block(f"body_down.{i}", x, "first" if i == 0 else "down")
        skips.append(x)
    x = block("body_up.0", x, "up")
    for i in range(1, 6):
        x = block(f"body_up.{i}", torch.cat((skips[-i - 1], x), 1), "up")
    return F.conv2d(x, sd["layer_up_last.weight"], sd["layer_up_last.bias"])


def coco_reference_label(values: torch.Tensor) -> torch.Tensor:
    """CocoStuffDataset + preprocess_input: stuffthingmaps value v -> class v + 1, 255 -> 0; one-hot of 183."""
    ids = torch.where(values == 255, 0, values + 1)
    return torch.zeros(ids.shape[0], 183, *ids.shape[2:]).scatter_(1, ids, 1.0)


def our_semantics(values: torch.Tensor, space: LabelSpace) -> torch.Tensor:
    """spadekit's semantics of stuffthingmaps-like values (255 = the space's don't-care channel)."""
    ids = torch.where(values == 255, space.label_nc, values)
    return to_semantics(ids, None, space)


def calibrated(sd: dict, semantic_nc: int, crop: int, seed: int) -> dict:
    """`sd` with SPADE's running statistics at the scale of its activations on a random label map: far from
    them, features grow over the blocks and the output saturates tanh."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, semantic_nc, (1, 1, 8, 8), generator=gen).repeat_interleave(crop // 8, 2)
    label = torch.zeros(1, semantic_nc, crop, crop).scatter_(1, ids.repeat_interleave(crop // 8, 3), 1.0)
    _CALIBRATE.append(True)
    try:
        ref_generator(sd, label, torch.randn(1, 64, generator=gen), crop)
    finally:
        _CALIBRATE.clear()
    return sd


# ------------------------------------------------------------------------------------------ checkpoints


def coco_order() -> list[int]:
    """OASIS's COCO class i is our channel: 0 (unlabeled) -> 182, i -> i - 1."""
    return [182, *range(182)]


@pytest.fixture(scope="module")
def coco_files(tmp_path_factory):
    """An OASIS COCO experiment folder: models/latest_{G,EMA,D}.pth, latest_iter.txt and opt.txt, of a small
    configuration (channels_G 2; SPADE's hidden width and D's, fixed at 128 and 64 in the reference, reduced to
    4 and 4 to keep a forward at 256x256 quick), random weights; the EMA generator is G's weights perturbed."""
    root = tmp_path_factory.mktemp("oasis") / "oasis_coco_small"
    (root / "models").mkdir(parents=True)
    g = calibrated(random_state(oasis_g_layout(183, ch=2, hidden=4), 1), 183, 128, 5)
    gen = torch.Generator().manual_seed(2)
    ema = {k: v * (1 + 0.3 * torch.randn(v.shape, generator=gen)) if k.endswith(("weight", "weight_orig")) else v
           for k, v in g.items()}
    d = random_state(oasis_d_layout(183, c=4), 3)
    torch.save(g, root / "models" / "latest_G.pth")
    torch.save(ema, root / "models" / "latest_EMA.pth")
    torch.save(d, root / "models" / "latest_D.pth")
    (root / "latest_iter.txt").write_text("120000")
    lines = {"channels_G": "2", "dataset_mode": "coco", "lambda_labelmix": "10.0", "z_dim": "64",
             "no_3dnoise": "False", "param_free_norm": "syncbatch", "batch_size": "32", "lr_g": "0.0001"}
    (root / "opt.txt").write_text("----------------- Options ---------------\n" + "".join(
        f"{k:>25}: {v:<30}\n" for k, v in sorted(lines.items())) + "----------------- End -------------------\n")
    return root, {"G": g, "EMA": ema, "D": d}


@pytest.fixture(scope="module")
def coco_run(coco_files, tmp_path_factory):
    run = tmp_path_factory.mktemp("oasis_run") / "run"
    summary = import_oasis(coco_files[0], "coco", run)
    return run, summary


# ---------------------------------------------------------------------------------------------- (a) import


def test_import_maps_every_key_and_synth_paints_what_the_reference_generator_paints(coco_files, coco_run, tmp_path,
                                                                                   cli):
    root, states = coco_files
    run, summary = coco_run
    assert (summary.iteration, summary.iteration_number) == ("latest", 120000)
    assert {f.role: f.keys for f in summary.files} == {"generator": len(states["G"]), "ema": len(states["EMA"]),
                                                         "discriminator": len(states["D"])}
    info = json.loads((run / "run.json").read_text())
    assert info["generator"] == "oasis" and info["use_instance"] is False
    assert {k: info["options"][k] for k in ("ngf", "z_dim", "noise_3d", "hidden", "channels_D", "dontcare_class")} \
        == {"ngf": 2, "z_dim": 64, "noise_3d": True, "hidden": 4, "channels_D": 4, "dontcare_class": "dataset"}
    recipe = load_recipe(run / "config.toml")
    assert (recipe.model.name, recipe.optim.beta2, recipe.train.ema_decay, recipe.bench.generator_weights) == \
        ("oasis", 0.999, 0.9999, "ema")

    # a mask of stuffthingmaps values with unlabeled (255) pixels, through the command line
    gen = torch.Generator().manual_seed(0)
    values = torch.randint(0, 182, (1, 1, 8, 8), generator=gen)
    values[0, 0, :2, :3] = 255
    values = values.repeat_interleave(32, 2).repeat_interleave(32, 3)
    Image.fromarray(values[0, 0].numpy().astype(np.uint8)).save(tmp_path / "mask.png")
    cli("synth", str(tmp_path / "mask.png"), "--run", str(run), "--seed", "7", "--out", str(tmp_path / "out.png"),
        "--device", "cpu", "--precision", "fp32")
    painted = torch.from_numpy(np.array(Image.open(tmp_path / "out.png"))).permute(2, 0, 1).float()
    z = torch.randn(1, 64, generator=seeded(7))  # synth's one draw for one sample
    expected = ref_generator(dict(states["EMA"]), coco_reference_label(values), z, 256)[0]  # the EMA weights
    assert ((painted - (expected + 1) * 127.5).abs().max()) <= 1.0 and expected.std() > 0.1

    # the raw G in plain eval mode on our semantics; its weights fit any image size: compared at 64x64, quicker
    imported, _ = load_generator(run, use_ema=False)
    generator = build_generator("oasis", json.loads((run / "run.json").read_text())["options"],
                                GeneratorContext(COCO_SPACE, 64)).eval()
    generator.load_state_dict(imported.state_dict())
    small = values[..., ::4, ::4]
    with torch.no_grad():
        ours = generator(our_semantics(small, COCO_SPACE), z)
    reference = ref_generator(dict(states["G"]), coco_reference_label(small), z, 64)
    raw_vs_ema = ref_generator(dict(states["EMA"]), coco_reference_label(small), z, 64)
    assert torch.allclose(ours, reference, atol=1e-4) and (reference - raw_vs_ema).abs().max() > 0.1

    # training mode: batch statistics (running ones updated, momentum 0.1) and the hook's power iteration
    sd = dict(states["G"])
    generator.train()
    _TRAINING.append(True)
    try:
        ours = generator(our_semantics(small, COCO_SPACE), z)
        reference = ref_generator(sd, coco_reference_label(small), z, 64)
    finally:
        _TRAINING.clear()
    assert torch.allclose(ours, reference, atol=1e-4)
    assert torch.allclose(generator.state_dict()["body.5.norm_1.first_norm.running_var"],
                          sd["body.5.norm_1.first_norm.running_var"], rtol=1e-5)


def test_imported_discriminator_segments_as_the_reference_with_our_class_order(coco_files, coco_run):
    _, states = coco_files
    run, _ = coco_run
    state = load_checkpoint(latest_checkpoint(run))["discriminator"]
    layout = oasis_d_layout(183, c=4)
    assert parameters_of(layout) == sum(v.numel() for k, v in state.items() if not k.endswith(("_u", "_v")))
    options = json.loads((run / "run.json").read_text())["options"]
    context = GeneratorContext(COCO_SPACE, 64)  # D's size is free: import at 256, compare at 64
    d = registry.get("generators", "oasis").method(
        registry.get("generators", "oasis").parse_options(options), context=context,
        recipe=load_recipe(run / "config.toml")).build_discriminator().eval()
    d.load_state_dict(state)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ours = d(image)
    reference = ref_discriminator(states["D"], image)
    assert torch.allclose(ours[:, [0, *(1 + c for c in coco_order())]], reference, atol=1e-5, rtol=1e-4)

    # training mode: one power iteration per forward in the reference's order (v, then u), twice
    d.train()
    sd = dict(states["D"])
    _TRAINING.append(True)
    try:
        for _ in range(2):
            ours, reference = d(image), ref_discriminator(sd, image)
            assert torch.allclose(ours[:, [0, *(1 + c for c in coco_order())]], reference, atol=1e-5, rtol=1e-4)
    finally:
        _TRAINING.clear()
    assert torch.allclose(d.state_dict()["body_up.3.conv1.2.parametrizations.weight.0._v"],
                          sd["body_up.3.conv1.2.weight_v"], atol=1e-6)


@pytest.fixture(scope="module")
def ade_meta():
    """The plugin's ADE20K generator and discriminator at the reference's defaults, on the meta device."""
    context = GeneratorContext(ADE_SPACE, 256)
    generator = build_on_meta("oasis", {"dontcare_class": 0}, context)
    spec = registry.get("generators", "oasis")
    recipe = load_recipe(None, {"model.name": "oasis", "model.dontcare_class": 0})
    with torch.device("meta"):  # the plugin's spectral norm skips its power iterations on meta tensors
        discriminator = spec.method(spec.parse_options({"dontcare_class": 0}), context=context,
                                    recipe=recipe).build_discriminator()
    return generator, discriminator


def test_full_size_checkpoints_map_key_for_key(ade_meta):
    """The released files' layouts (channels_G 64, hidden 128, channels_D 64) land on the plugin's modules key for
    key, without allocating anything: G for every dataset, D for ADE20K (its layout differs by the outputs only)."""
    for dataset, space, crop, aspect, nc in (("cityscapes", LabelSpace(35, False, False), 512, 2.0, 35),
                                             ("coco", COCO_SPACE, 256, 1.0, 183)):
        ours = build_on_meta("oasis", {}, GeneratorContext(space, crop, aspect)).state_dict()
        meta = {k: torch.empty(s, device="meta") for k, s in oasis_g_layout(nc).items()}
        mapped, notes = map_state(meta, ours, f"{dataset}_G.pth", "the generator")
        assert set(mapped) == set(ours) and notes == []
    for network, layout in zip(ade_meta, (oasis_g_layout(151), oasis_d_layout(151)), strict=True):
        meta = {k: torch.empty(s, device="meta") for k, s in layout.items()}
        mapped, notes = map_state(meta, network.state_dict(), "ade20k.pth", "the network")
        assert set(mapped) == set(network.state_dict()) and notes == []


def test_parameter_counts_are_the_references(ade_meta):
    """ADE20K 256x256, the reference's defaults. By hand: G = fc (215*1024*9 + 1024) + six blocks
    [2 x 24,094,720 (1024->1024), 14,249,984 (1024->512), 5,596,160, 2,694,656, 1,600,256] + conv_img 1,731
    = 74,314,691, a SPADE on norm_nc channels being 247,808 + 2306 * norm_nc (215 -> 128 shared conv, 128 ->
    norm_nc gamma and beta); D = encoder 10,936,448 + decoder 11,312,576 + layer_up_last 9,880 = 22,258,904."""
    assert parameters_of(oasis_g_layout(151)) == ADE_G_PARAMS
    assert parameters_of(oasis_d_layout(151)) == ADE_D_PARAMS
    assert [count_parameters(network) for network in ade_meta] == [ADE_G_PARAMS, ADE_D_PARAMS]


# ------------------------------------------------------------------------------------ (b) D and the losses


def ref_class_weights(label: torch.Tensor) -> torch.Tensor:
    """Per pixel: B*H*W / (classes present other than 0 * pixels of its class); class 0 (don't-care) 0."""
    ids = label.argmax(1)
    counts = torch.bincount(ids.flatten(), minlength=label.shape[1]).double()
    present = int((counts[1:] > 0).sum())
    weights = ids.numel() / (present * counts.clamp_min(1))
    weights[0] = 0
    return weights[ids].float()


def ref_n1_loss(logits: torch.Tensor, label: torch.Tensor, real: bool) -> torch.Tensor:
    """OASIS-layout label (class 0 don't-care); real: target 1 + class, weighted; fake: target 0, plain mean."""
    ids = label.argmax(1)
    log_p = F.log_softmax(logits.double(), 1)
    if not real:
        return -log_p[:, 0].mean()
    picked = log_p.gather(1, (ids + 1)[:, None])[:, 0]
    return -(picked * ref_class_weights(label)).mean()


def ref_labelmix_mask(label: torch.Tensor) -> torch.Tensor:
    """generate_labelmix's mask, its steps as written: one draw per class present, ascending, written in place."""
    target = label.argmax(1, keepdim=True)
    for c in torch.unique(target):
        target[target == c] = torch.randint(0, 2, (1,))
    return target.float()


def _coco_batch(seed: int, size: int = 64):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 6, (2, 1, 4, 4), generator=gen)  # few classes, so that 0 and 1 meet
    values = torch.where(values == 5, 255, values).repeat_interleave(size // 4, 2).repeat_interleave(size // 4, 3)
    return our_semantics(values, COCO_SPACE), coco_reference_label(values)


def test_losses_and_labelmix_match_the_reference_on_our_layout():
    from spadekit_plugins.oasis.objective import labelmix_mask, n1_loss

    semantics, reference = _coco_batch(0)
    logits_ref = torch.randn(2, 184, 64, 64)
    ours = torch.empty_like(logits_ref)  # the same logits, in our class order
    ours[:, 0], ours[:, [1 + c for c in coco_order()]] = logits_ref[:, 0], logits_ref[:, 1:]
    for real in (True, False):
        assert torch.allclose(n1_loss(ours, semantics, real, dontcare=182).double(),
                              ref_n1_loss(logits_ref, reference, real), rtol=1e-5)
    rank = torch.empty(183, dtype=torch.long)
    rank[torch.tensor(coco_order())] = torch.arange(183)
    for seed in range(8):  # some seeds give class 0 a 1, which class 1's draw then overrides
        torch.manual_seed(seed)
        expected = ref_labelmix_mask(reference)
        torch.manual_seed(seed)
        assert torch.equal(labelmix_mask(semantics, rank), expected)


def test_labelmix_keeps_the_references_in_place_quirk():
    from spadekit_plugins.oasis.objective import labelmix_mask

    label = torch.zeros(1, 3, 1, 3).scatter_(1, torch.tensor([[[[0, 1, 2]]]]), 1.0)
    for seed in range(20):
        torch.manual_seed(seed)
        draws = [int(torch.randint(0, 2, (1,))) for _ in range(3)]
        torch.manual_seed(seed)
        mask = labelmix_mask(label)[0, 0, 0].tolist()
        assert mask == [draws[1] if draws[0] == 1 else 0, draws[1], draws[2]]


def _objective(options: dict, space: LabelSpace = COCO_SPACE):
    sets = {"model.name": "oasis", "data.crop_size": 64, "model.ngf": 1, "model.hidden": 4, "model.z_dim": 4,
            "model.channels_D": 2, **{f"model.{k}": v for k, v in options.items()}}
    recipe = load_recipe(None, sets)
    context = GeneratorContext(space, 64)
    generator = build_generator("oasis", recipe.model.options, context)
    method = training_method(recipe, context)
    discriminator = method.build_discriminator()
    return method.objective(GeneratorStep(generator), discriminator, None), generator, discriminator


def test_objective_computes_the_references_steps():
    objective, generator, discriminator = _objective({"lambda_labelmix": 5.0})
    semantics, reference = _coco_batch(1)
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    fixed = torch.rand(2, 3, 64, 64) * 2 - 1
    generator.forward = lambda semantics, z=None: fixed  # the fakes, fixed for the comparison
    discriminator.eval()  # no power iteration between the passes (the reference's forward is compared in eval)

    def d_ref(image):  # D's logits in OASIS's class order
        out = discriminator(image)
        return torch.cat([out[:, :1], out[:, [1 + c for c in coco_order()]]], 1)

    torch.manual_seed(3)
    losses = objective.discriminator_losses(semantics, real)
    assert set(losses) == {"D_fake", "D_real", "D_LabelMix"}
    torch.manual_seed(3)
    mask = ref_labelmix_mask(reference)
    out_fake, out_real = d_ref(fixed), d_ref(real)
    out_mixed = d_ref(mask * real + (1 - mask) * fixed)
    expected = {"D_fake": ref_n1_loss(out_fake, reference, False), "D_real": ref_n1_loss(out_real, reference, True),
                "D_LabelMix": 5.0 * F.mse_loss(mask * out_real + (1 - mask) * out_fake, out_mixed)}
    for name, value in expected.items():
        assert torch.allclose(losses[name].double(), value.double(), rtol=1e-4, atol=1e-7), name
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in discriminator.parameters())

    discriminator.zero_grad()
    fake = fixed.clone().requires_grad_(True)
    generator.forward = lambda semantics, z=None: fake
    g_losses, returned = objective.generator_losses(semantics, real)
    assert set(g_losses) == {"G_adv"} and returned is fake
    assert torch.allclose(g_losses["G_adv"].double(), ref_n1_loss(d_ref(fixed), reference, True), rtol=1e-4)
    g_losses["G_adv"].backward()
    assert fake.grad is not None and all(p.grad is None for p in discriminator.parameters())


def test_dontcare_class_and_its_errors():
    options = registry.get("generators", "oasis").parse_options
    assert options({}).oasis_order(COCO_SPACE) == coco_order()
    assert options({"dontcare_class": 0}).oasis_order(ADE_SPACE) == list(range(151))
    assert options({}).dontcare_channel(ADE_SPACE) is None
    assert options({"dontcare_class": "none"}).oasis_order(COCO_SPACE) == list(range(183))
    with pytest.raises(SpadekitError, match=r"model.dontcare_class = 151 is not a class of this dataset"):
        options({"dontcare_class": 151}).dontcare_channel(ADE_SPACE)
    with pytest.raises(SpadekitError, match="no feature matching"):
        training_method(load_recipe(None, {"model.name": "oasis", "loss.lambda_feat": 10.0}),
                        GeneratorContext(ADE_SPACE, 256))


# ------------------------------------------------------------------------ (c) the trainer, resume, synth


def test_trains_resumes_and_synthesizes(toy_shards, tmp_path, cli):
    from spadekit.train.loop import TrainJob, train

    sets = {"data.shards": str(toy_shards), "data.load_size": 72, "data.crop_size": 64, "data.batch_size": 2,
            "data.num_workers": 0, "data.use_instance": False, "model.name": "oasis", "model.ngf": 2,
            "model.hidden": 8, "model.z_dim": 4, "model.channels_D": 4, "train.log_every": 1,
            "train.sample_every": 2, "train.checkpoint_every": 2, "train.ema_decay": 0.9, "train.seed": 4,
            "model.ema_stat_batches": 3}
    run, straight = tmp_path / "run", tmp_path / "straight"
    # stopped at step 1, where the straight run neither samples nor saves (so recomputes no EMA statistics)
    train(TrainJob(load_recipe(None, {**sets, "train.max_steps": 1}), run))
    train(TrainJob(load_recipe(None, {**sets, "train.max_steps": 3}), run, resume=True))
    train(TrainJob(load_recipe(None, {**sets, "train.max_steps": 3}), straight))
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert {"G_adv", "D_fake", "D_real", "D_LabelMix"} <= set(steps[-1]) and "G_feat" not in steps[-1]
    state, expected = load_checkpoint(latest_checkpoint(run)), load_checkpoint(latest_checkpoint(straight))
    for key in ("generator", "discriminator", "ema", "ema_averaged_buffers"):  # resume is exact
        for name, value in expected[key].items():
            assert torch.equal(state[key][name], value), f"{key}.{name}"
    # the saved EMA generator carries its own batch statistics (reference update_EMA), not the averaged ones
    name = "body.0.norm_0.first_norm.running_mean"
    assert not torch.allclose(state["ema"][name], state["ema_averaged_buffers"][name])
    classes = RunInfo.load(run).space.one_hot_nc
    assert state["discriminator"]["layer_up_last.weight"].shape[0] == 1 + classes  # "fake" + the classes

    mask = tmp_path / "mask.png"
    Image.fromarray(np.repeat(np.arange(4, dtype=np.uint8), 16)[None].repeat(64, 0)).save(mask)
    cli("synth", str(mask), "--run", str(run), "--n", "2", "--out", str(tmp_path / "grid.png"), "--device", "cpu")
    cli("synth", str(mask), "--run", str(run), "--resample-region", "1", "--n", "2",
        "--out", str(tmp_path / "local.png"), "--device", "cpu")
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "local.png").is_file()


# ------------------------------------------------------------------------------------------ (d) z contract


def test_noise_contract():
    context = GeneratorContext(LabelSpace(5, False, False), 64)
    g = build_generator("oasis", {"ngf": 2, "hidden": 8, "z_dim": 4}, context).eval()
    assert (g.z_dim, g.encoder, g.spatial_latent) == (4, None, True)
    semantics = to_semantics(torch.randint(0, 5, (2, 1, 64, 64)), None, context.space)
    with torch.no_grad():
        torch.manual_seed(11)
        drawn = g(semantics)
        torch.manual_seed(11)
        z = torch.randn(2, 4)  # what z None draws: B x z_dim from N(0, 1), in float32
        assert torch.equal(drawn, g(semantics, z))
        assert torch.equal(g(semantics, z), g(semantics, z[:, :, None, None].expand(2, 4, 64, 64).contiguous()))
        local = z[:, :, None, None].repeat(1, 1, 64, 64)
        local[:, :, 40:, 40:] = torch.randn(2, 4, 1, 1)
        changed = (g(semantics, local) - g(semantics, z)).abs().amax(1)
        assert changed[:, 48:, 48:].min() > 0 and changed.mean() > 0
        coarse = torch.randn(2, 4, 16, 16)  # another size: nearest-resized to the output size
        assert torch.equal(g(semantics, coarse), g(semantics, F.interpolate(coarse, size=(64, 64))))
        for bad in (torch.randn(3, 4), torch.randn(2, 5), torch.randn(2, 4, 8)):
            with pytest.raises(ValueError, match="z must be 2 x 4"):
                g(semantics, bad)
    plain = build_generator("oasis", {"ngf": 2, "hidden": 8, "noise_3d": False}, context)
    assert plain.z_dim is None
    with pytest.raises(ValueError, match="without 3D noise"):
        plain(semantics, z)


# ------------------------------------------------------------------------------------------- (e) errors


def _broken_copy(coco_files, tmp_path, change) -> str:
    root = tmp_path / "broken"
    shutil.copytree(coco_files[0], root)
    state = dict(coco_files[1]["G"])
    change(state)
    torch.save(state, root / "models" / "latest_G.pth")
    return str(root)


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.pop("body.3.norm_1.mlp_gamma.weight"), r"latest_G.pth lacks 1 key\(s\) that spadekit's OASIS "
     r"generator for coco needs: body.3.norm_1.mlp_gamma.weight; is the file complete\?"),
    (lambda s: s.update({"body.6.conv_0.bias": torch.zeros(2)}), r"latest_G.pth has 1 key\(s\) that spadekit's "
     r"OASIS generator for coco does not have: body.6.conv_0.bias; is it a checkpoint of another network"),
    (lambda s: s.update({"body.2.conv_1.weight_orig": torch.zeros(16, 32, 3, 3)}), r"latest_G.pth: "
     r"body.2.conv_1.weight_orig has shape \(16, 32, 3, 3\) but spadekit's OASIS generator for coco needs "
     r"\(16, 16, 3, 3\); was it trained on another --dataset or with other options\?"),
])
def test_import_errors_name_the_key(coco_files, tmp_path, cli, change, message):
    ckpt = _broken_copy(coco_files, tmp_path, change)
    result = cli("import", "oasis", ckpt, "--dataset", "coco", "--out", str(tmp_path / "out"), check=False)
    text = " ".join(result.stderr.split())
    assert result.returncode != 0 and re.search(message, text), text
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_import_refuses_what_it_cannot_import(coco_files, tmp_path):
    root = str(coco_files[0])
    cases = [
        ((str(tmp_path / "nowhere"), "coco"), {}, "does not exist"),
        ((root, "ade20k"), {}, "says dataset_mode coco (line"),
        ((root, "coco"), {"which": "50000"}, "has no 50000_G.pth or 50000_EMA.pth; pass --iter latest"),
        ((root, "coco"), {"which": "newest"}, "is not latest, best or an iteration number"),
        ((root, "kitti"), {}, "is not one of OASIS's datasets"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(SpadekitError, match=message.replace("(", r"\(")):
            import_oasis(*args, out=tmp_path / "out", **kwargs)
    empty = tmp_path / "empty" / "models"
    empty.mkdir(parents=True)
    with pytest.raises(SpadekitError, match="holds no OASIS generator file"):
        import_oasis(empty.parent, "coco", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_discriminator_is_unwrapped_for_g_step():
    objective, _, discriminator = _objective({})
    assert unwrap(objective.discriminator) is discriminator and objective.trains_discriminator
