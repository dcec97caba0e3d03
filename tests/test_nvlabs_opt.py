"""`spadekit import nvlabs` reads the checkpoint folder's opt.txt (and never its opt.pkl).

The opt.txt files are written as the official `BaseOptions.save_options` writes them, from the official
TrainOptions defaults of `--dataset_mode coco` (base options, the spade generator's and the multiscale
discriminator's, the coco dataset's); the checkpoints and the reference forward are those of
tests/test_nvlabs_import.py.
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from spadekit.cli import imports
from spadekit.config import load_recipe
from spadekit.errors import SpadekitError
from spadekit.nvlabs import import_nvlabs, official_config
from spadekit.nvlabs.options import parse_opt_txt
from spadekit.run_info import load_generator
from tests.test_nvlabs_import import (  # _one_thread: the same autouse fixture, one torch thread
    NGF,
    TINY,
    TINY_NC,
    _one_thread,  # noqa: F401
    assert_image_close,
    calibrate,
    official_e_layout,
    official_g_layout,
    random_state,
    ref_generator,
    semantics,
    write_official,
)

# The official TrainOptions defaults after the spade / multiscale / coco option setters (str() of each value).
COCO_TRAIN_DEFAULTS = {
    "D_steps_per_G": 1, "aspect_ratio": 1.0, "batchSize": 1, "beta1": 0.0, "beta2": 0.9,
    "cache_filelist_read": True, "cache_filelist_write": True, "checkpoints_dir": "./checkpoints",
    "coco_no_portraits": False, "contain_dontcare_label": True, "continue_train": False, "crop_size": 256,
    "dataroot": "./datasets/cityscapes/", "dataset_mode": "coco", "debug": False, "display_freq": 100,
    "display_winsize": 256, "gan_mode": "hinge", "gpu_ids": "0", "init_type": "xavier", "init_variance": 0.02,
    "isTrain": None, "label_nc": 182, "lambda_feat": 10.0, "lambda_kld": 0.05, "lambda_vgg": 10.0,
    "load_from_opt_file": False, "load_size": 286, "lr": 0.0002, "max_dataset_size": sys.maxsize,
    "model": "pix2pix", "nThreads": 0, "n_layers_D": 4, "name": "label2coco", "ndf": 64, "nef": 16,
    "netD": "multiscale", "netD_subarch": "n_layer", "netG": "spade", "ngf": 64, "niter": 50, "niter_decay": 0,
    "no_TTUR": False, "no_flip": False, "no_ganFeat_loss": False, "no_html": False, "no_instance": False,
    "no_pairing_check": False, "no_vgg_loss": False, "norm_D": "spectralinstance", "norm_E": "spectralinstance",
    "norm_G": "spectralspadesyncbatch3x3", "num_D": 2, "num_upsampling_layers": "normal", "optimizer": "adam",
    "output_nc": 3, "phase": "train", "preprocess_mode": "resize_and_crop", "print_freq": 100,
    "save_epoch_freq": 10, "save_latest_freq": 5000, "serial_batches": False, "tf_log": False, "use_vae": False,
    "which_epoch": "latest", "z_dim": 256,
}


def official_opt_text(frame: bool = False, **given) -> str:
    """opt.txt as `save_options` writes it (`frame`: with `print_options`' header and footer, as in a log)."""
    values = {**COCO_TRAIN_DEFAULTS, "isTrain": True, **given}
    lines = []
    for k, v in sorted(values.items()):
        default = COCO_TRAIN_DEFAULTS.get(k)
        comment = f"\t[default: {default}]" if v != default else ""  # '\t[default: %s]' % str(default)
        lines.append(f"{str(k):>25}: {str(v):<30}{comment}\n")  # '{:>25}: {:<30}{}\n'.format(str(k), str(v), comment)
    text = "".join(lines)
    if frame:
        text = "----------------- Options ---------------\n" + text + "----------------- End -------------------"
    return text


def write_opt(folder: Path, **given) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "opt.txt").write_text(official_opt_text(**given))
    return folder / "opt.txt"


def tiny_opt(**given) -> dict:
    """The options of a TINY-label-space run (5 classes + don't-care + instance edges) with width NGF at 64."""
    return {"label_nc": 5, "crop_size": 64, "load_size": 72, "ngf": NGF, "dataset_mode": "custom", **given}


runner = CliRunner()

# ------------------------------------------------------------------ opt.txt decides what the weights cannot


COCO_MORE = replace(official_config("coco"), crop_size=128, num_upsampling_layers="more", load_size=143)


@pytest.fixture(scope="module")
def coco_more_g() -> dict[str, torch.Tensor]:
    """A COCO model trained with --num_upsampling_layers more --crop_size 128: its weights have the layout of
    a 'normal' one (a conv head), so only opt.txt tells the schedule and the image size."""
    return calibrate(random_state(official_g_layout(184, NGF, num_up=6), seed=21), COCO_MORE, 6)


def test_coco_model_trained_with_more_upsampling_and_crop_128_synthesizes_what_it_computes(tmp_path, coco_more_g):
    src = write_official(tmp_path / "coco_more", G=coco_more_g)
    write_opt(src, num_upsampling_layers="more", crop_size=128, load_size=143, ngf=NGF, name="coco_more",
              dataroot="/data/coco stuff: v1", preprocess_mode="resize_and_crop")
    result = runner.invoke(imports.app, ["nvlabs", str(src), "--dataset", "coco", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "opt.txt: dataset_mode coco, crop_size 128, aspect_ratio 1.0, load_size 143" in output
    assert "num_upsampling_layers more" in output and "128x128 images" in output and "no opt.txt" not in output

    generator, info = load_generator(tmp_path / "run")
    assert (info.crop_size, info.aspect_ratio, info.options["num_upsampling_layers"]) == (128, 1.0, "more")
    assert info.context.semantic_nc == 184 and info.facts.name == "coco"
    seg = semantics(COCO_MORE, batch=1)
    with torch.no_grad():
        image = generator(seg)
        assert image.shape == (1, 3, 128, 128)
        assert_image_close(image, ref_generator(coco_more_g, seg, 128, 1.0, 6))
    recipe = load_recipe(tmp_path / "run" / "config.toml")
    assert (recipe.data.crop_size, recipe.data.load_size, recipe.model.options["num_upsampling_layers"]) == (
        128, 143, "more")
    assert (recipe.bench.segmenter, recipe.bench.generator_weights) == ("deeplabv2", "raw")  # Table 1's protocol


def test_without_opt_txt_the_dataset_defaults_are_assumed_and_said(tmp_path, coco_more_g):
    src = write_official(tmp_path / "coco_more", G=coco_more_g)
    result = runner.invoke(imports.app, ["nvlabs", str(src), "--dataset", "coco", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert f"no opt.txt in {src}: the official defaults of coco (crop 256, aspect ratio 1, normal upsampling" in output
    assert "184 input channels" in output and "256x256 images" in output
    _, info = load_generator(tmp_path / "run")
    assert (info.crop_size, info.options["num_upsampling_layers"]) == (256, "normal")


def test_opt_txt_decides_batch_norm_and_instance_edges(tmp_path):
    """Weights show running statistics but not batch vs synchronized batch norm; no_instance gives 6 channels."""
    config = replace(TINY, use_instance=False)
    g = calibrate(random_state(official_g_layout(TINY_NC - 1, NGF), seed=22), config, 5)
    src = write_official(tmp_path / "ckpt", G=g)
    write_opt(src, **tiny_opt(no_instance=True, norm_G="spectralspadebatch3x3"))
    summary = import_nvlabs(src, TINY, tmp_path / "run")
    assert summary.options["norm"] == "batch" and summary.from_opt["no_instance"] == "True"
    assert summary.opt_file == (src / "opt.txt").resolve() and summary.image_size == (64, 64)
    assert any("dataset_mode custom" in note for note in summary.notes)
    generator, info = load_generator(tmp_path / "run")
    assert info.use_instance is False and info.context.semantic_nc == TINY_NC - 1
    assert load_recipe(tmp_path / "run" / "config.toml").data.use_instance is False
    seg = semantics(config)
    with torch.no_grad():
        assert_image_close(generator(seg), ref_generator(g, seg, 64, 1.0, 5))


def test_use_vae_false_beside_an_encoder_file_is_fine(tmp_path):
    g = random_state(official_g_layout(TINY_NC, NGF), seed=23)
    src = write_official(tmp_path / "ckpt", G=g, E=random_state(official_e_layout(NGF, 8), seed=24))
    write_opt(src, **tiny_opt())
    summary = import_nvlabs(src, TINY, tmp_path / "run")
    assert summary.options["use_vae"] is False and [f.role for f in summary.files] == ["generator"]


# --------------------------------------------------------------------------- opt.txt against the weights


def _vae_g(seed: int = 25) -> dict[str, torch.Tensor]:
    return random_state(official_g_layout(TINY_NC, NGF, vae_head=(2, 2), z_dim=8), seed=seed)


def _most_g() -> dict[str, torch.Tensor]:
    return random_state(official_g_layout(TINY_NC, NGF, num_up=7), seed=26)


CONTRADICTIONS = {
    # name: (weights, with an encoder file, opt.txt options, dataset, what the message must say)
    "ngf": (None, False, {"ngf": 64}, TINY, ["ngf 64", "width 4"]),
    "most without up_4": (None, False, {"num_upsampling_layers": "most"}, TINY,
                          ["num_upsampling_layers most", "has no up_4 block"]),
    "more with up_4": (_most_g, False, {"num_upsampling_layers": "more", "crop_size": 128}, TINY,
                       ["num_upsampling_layers more", "has an up_4 block"]),
    "use_vae without encoder": (_vae_g, False, {"use_vae": True, "z_dim": 8}, TINY,
                                ["use_vae True", "no ", "latest_net_E.pth"]),
    "use_vae on a conv head": (None, True, {"use_vae": True}, TINY, ["use_vae True", "decodes the label map"]),
    "no use_vae on a linear head": (_vae_g, False, {"use_vae": False}, TINY, ["use_vae False", "Linear"]),
    "z_dim": (_vae_g, True, {"use_vae": True, "z_dim": 256}, TINY, ["z_dim 256", "z of 8 values"]),
    "crop vs linear head": (_vae_g, True, {"use_vae": True, "z_dim": 8, "crop_size": 128}, TINY,
                            ["crop_size 128", "16 cells", "256 values"]),
    "crop no schedule reaches": (None, False, {"crop_size": 100}, TINY, ["crop_size 100", "multiples of 32"]),
    "instance norm": (None, False, {"norm_G": "spectralspadeinstance3x3"}, TINY,
                      ["norm_G spectralspadeinstance3x3", "running statistics"]),
    "no spectral norm": (None, False, {"norm_G": "spadesyncbatch3x3"}, TINY, ["norm_G spadesyncbatch3x3", "spectral"]),
    "SPADE kernel": (None, False, {"norm_G": "spectralspadesyncbatch5x5"}, TINY, ["norm_G", "3x3"]),
    "not a SPADE norm": (None, False, {"norm_G": "spectralinstance"}, TINY, ["norm_G spectralinstance", "SPADE"]),
    "netG": (None, False, {"netG": "pix2pixhd", "norm_G": "instance"}, TINY, ["netG pix2pixhd", "--netG spade"]),
    "no_instance vs weights": (None, False, {"no_instance": True}, TINY,
                               ["no_instance True", "6 input channels", "takes 7"]),
    "label_nc vs dataset": (None, False, {"label_nc": 150}, TINY, ["label_nc 150", "151 label channels", "has 6"]),
    "instance edges vs dataset": (None, False, {"no_instance": False, "label_nc": 150}, "ade20k",
                                  ["no_instance False", "no instance maps"]),
}


@pytest.mark.parametrize("case", list(CONTRADICTIONS))
def test_opt_txt_contradicting_the_weights_or_dataset_names_the_option(tmp_path, case):
    make, encoder, given, dataset, expected = CONTRADICTIONS[case]
    g = make() if make else random_state(official_g_layout(TINY_NC, NGF), seed=27)
    e = {"E": random_state(official_e_layout(NGF, 8), seed=28)} if encoder else {}
    src = write_official(tmp_path / "ckpt", G=g, **e)
    write_opt(src, **tiny_opt(**given))
    with pytest.raises(SpadekitError) as err:
        import_nvlabs(src, dataset, tmp_path / "run")
    message = str(err.value)
    assert all(part in message for part in expected), message
    assert str(src / "opt.txt") in message and "\n" not in message
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------ malformed files

MALFORMED = {
    "not an option line": ("this line is no option", "line 3 is not an option line"),
    "not a number": ("                crop_size: big", "line 3 gives crop_size 'big', which is not a positive whole"),
    "not a flag": ("                  use_vae: yes", "line 3 gives use_vae 'yes', which is not True or False"),
    "not a schedule": ("    num_upsampling_layers: many", "line 3 gives num_upsampling_layers 'many'"),
    "repeated": ("                      ngf: 4", "line 3 sets ngf again (first on line 1)"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_opt_txt_is_one_sentence_naming_file_and_line(tmp_path, case):
    bad, expected = MALFORMED[case]
    src = write_official(tmp_path / "ckpt", G=random_state(official_g_layout(TINY_NC, NGF), seed=29))
    (src / "opt.txt").write_text(f"                      ngf: 4\n\n{bad}\n                label_nc: 5\n")
    with pytest.raises(SpadekitError) as err:
        import_nvlabs(src, TINY, tmp_path / "run")
    message = str(err.value)
    assert message.startswith(f"{src / 'opt.txt'} line ") and expected in message, message
    assert message.endswith(".") and message[:-1].count(". ") == 0 and "\n" not in message
    assert not (tmp_path / "run").exists()


def test_an_empty_opt_txt_is_an_error(tmp_path):
    src = write_official(tmp_path / "ckpt", G=random_state(official_g_layout(TINY_NC, NGF), seed=30))
    (src / "opt.txt").write_text("\n----------------- Options ---------------\n")
    with pytest.raises(SpadekitError, match="opt.txt holds no 'name: value' option lines"):
        import_nvlabs(src, TINY, tmp_path / "run")


def test_the_official_format_parses_with_or_without_frame_and_with_mangled_whitespace(tmp_path):
    given = {"num_upsampling_layers": "more", "crop_size": 128, "dataroot": "C: my data", "name": ""}
    expected = {"crop_size": 128, "num_upsampling_layers": "more", "norm_G": "spectralspadesyncbatch3x3",
                "contain_dontcare_label": True, "no_instance": False, "aspect_ratio": 1.0, "z_dim": 256}
    plain = official_opt_text(**given)
    variants = [plain, official_opt_text(frame=True, **given), plain.replace("\n", "\r\n"),
                plain.replace("\t", "    "), "".join(line.rstrip() + "\n" for line in plain.splitlines())]
    for text in variants:
        opt = parse_opt_txt(text, tmp_path / "opt.txt")
        assert {name: opt.value(name) for name in expected} == expected
        assert opt.used()["crop_size"] == "128" and opt.missing() == []
    lines = plain.splitlines()
    number = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("crop_size:"))
    assert parse_opt_txt(plain, tmp_path / "opt.txt").options["crop_size"].line == number
    assert lines[number - 1] == " " * 16 + "crop_size: 128" + " " * 27 + "\t[default: 256]"


# ------------------------------------------------------------------------------------- opt.pkl untouched


class _Trap:
    """Unpickling this creates `path`: what a hostile opt.pkl could do instead."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pytest.mark.parametrize("with_txt", [True, False])
def test_opt_pkl_is_never_unpickled(tmp_path, with_txt):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Trap(proof))).close()
    assert proof.exists()  # the trap works when unpickled

    marker = tmp_path / "marker"
    g = random_state(official_g_layout(TINY_NC, NGF), seed=31)
    src = write_official(tmp_path / "ckpt", G=g)
    (src / "opt.pkl").write_bytes(pickle.dumps(_Trap(marker)))
    if with_txt:
        write_opt(src, **tiny_opt())
    summary = import_nvlabs(src, TINY, tmp_path / "run")
    assert not marker.exists()
    assert (summary.opt_file is not None) == with_txt
    if not with_txt:
        assert any("opt.pkl was not read" in note for note in summary.notes)
