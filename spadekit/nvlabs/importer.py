"""`spadekit import nvlabs`: the official SPADE checkpoints (NVlabs/SPADE) as a spadekit run directory.

The official code saves `{which}_net_G.pth` (and `_net_D.pth`, `_net_E.pth` when trained with --use_vae)
with `torch.save(net.state_dict())`. Our SPADE generator, encoder and discriminator use the official
submodule names, so a key maps onto ours unchanged except for spectral norm: the official (older)
`torch.nn.utils.spectral_norm` stores `X.weight_orig / weight_u / weight_v`, our parametrization stores
`X.parametrizations.weight.original / .0._u / .0._v` (`OFFICIAL_SPECTRAL_KEYS`); both divide by the stored
estimate u^T W v in eval mode, so the imported model computes what the official one computes.

The generator options are read off the weights (width, VAE or not, normalization, SPADE kernel; `layout`).
The label space comes from the official dataset configuration (`configs.official_config`), and so do the image
geometry and the upsampling schedule unless the folder holds the opt.txt that training wrote (`options`):
then its options decide them, and every one the weights can show is checked against them. The run directory
gets run.json, a step-0 checkpoint (generator, EMA = generator, discriminator when given) and a resolved
recipe for fine-tuning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spadekit import registry
from spadekit.checkpoints import save_step_checkpoint
from spadekit.config import load_recipe
from spadekit.datasets import PAPER_DATASETS
from spadekit.errors import SpadekitError
from spadekit.fileio import sha256_file
from spadekit.generator import count_parameters
from spadekit.imported_run import check_out, write_run
from spadekit.nn.discriminator import MultiscaleDiscriminator
from spadekit.nvlabs.configs import NvlabsConfig, official_config
from spadekit.nvlabs.keys import ROLES, convert_state, find_checkpoints, read_state_dict
from spadekit.nvlabs.layout import check_channels, check_opt, generator_options, read_weights
from spadekit.nvlabs.options import OPT_PKL, OfficialOptions, configure, read_opt_txt
from spadekit.run_info import DISCRIMINATOR, EMA, GENERATOR, RunInfo, load_state

GENERATOR_PLUGIN = "spade"
ENCODER_PREFIX = "encoder."  # our generator holds the encoder as a submodule


@dataclass(frozen=True)
class ImportedFile:
    role: str  # generator | encoder | discriminator
    path: Path
    sha256: str
    keys: int  # official keys consumed
    parameters: int  # parameters of the network built from it


@dataclass
class ImportSummary:
    run_dir: Path
    dataset: str
    options: dict[str, Any]  # the generator plugin's options
    files: list[ImportedFile]
    discriminator: dict[str, Any] | None = None  # MultiscaleDiscriminator options, when D was imported
    notes: list[str] = field(default_factory=list)  # what the import had to fill in or leave out
    image_size: tuple[int, int] = (0, 0)  # (height, width) of the images the imported generator makes
    opt_file: Path | None = None  # the official opt.txt that decided the geometry and schedule, if any
    from_opt: dict[str, str] = field(default_factory=dict)  # official option -> its value as opt.txt writes it


@dataclass
class Converted:
    """Official state dicts turned into our networks' states (not yet written anywhere)."""

    info: RunInfo
    generator: dict[str, torch.Tensor]  # encoder included under `encoder.`
    discriminator: dict[str, torch.Tensor] | None
    discriminator_options: dict[str, Any] | None
    counts: dict[str, tuple[int, int]]  # role -> (official keys consumed, parameters)
    notes: list[str]


# ------------------------------------------------------------------------ discriminator from weights


def discriminator_options(d: dict[str, torch.Tensor], where: str) -> dict[str, Any]:
    """`MultiscaleDiscriminator` options (num_D, n_layers, ndf, norm) read off official D weights."""
    scales = sorted({int(m.group(1)) for key in d if (m := re.match(r"discriminator_(\d+)\.", key))})
    first = "discriminator_0.model0.0.weight"
    if not scales or scales != list(range(len(scales))) or first not in d:
        raise SpadekitError(
            f"{where} is not an official MultiscaleDiscriminator (its keys should start with discriminator_0.model0); "
            "only --netD multiscale checkpoints can be imported."
        )
    layers = {int(m.group(1)) for key in d if (m := re.match(r"discriminator_0\.model(\d+)\.", key))}
    n_layers = max(layers)
    norm = "spectralinstance"  # the official default; only observable when there is a middle layer
    if n_layers > 1:
        wrapped = any(key.startswith("discriminator_0.model1.0.0.") for key in d)  # Sequential(conv, norm)
        conv = "discriminator_0.model1.0.0" if wrapped else "discriminator_0.model1.0"
        spectral = f"{conv}.weight_orig" in d
        batch = any(key.startswith("discriminator_0.model1.0.1.") for key in d)  # instance norm has no state
        kind = "batch" if batch else "instance" if wrapped else "none"
        norm = f"spectral{kind}" if spectral else kind
    return {"num_D": len(scales), "n_layers": n_layers, "ndf": int(d[first].shape[0]), "norm": norm}


# -------------------------------------------------------------------------------------- conversion


def convert(config: NvlabsConfig, g: dict[str, torch.Tensor], e: dict[str, torch.Tensor] | None = None,
            d: dict[str, torch.Tensor] | None = None, names: dict[str, str] | None = None,
            origin: str = "spadekit import nvlabs", opt: OfficialOptions | None = None) -> Converted:
    """Official G (and E, D) state dicts -> our networks, loaded and checked key for key. `config` is already
    configured from `opt` (the folder's opt.txt), whose options the weights must not contradict."""
    names = {"G": "net_G", "E": "net_E", "D": "net_D", **(names or {})}
    notes: list[str] = []
    facts = read_weights(g, names["G"])
    if opt is not None:
        check_opt(opt, facts, config, names, e is not None)
    check_channels(facts, config, names["G"])
    use_e = e is not None and facts.z_dim is not None
    if e is not None and not use_e:
        notes.append(f"{names['E']} was left out: the generator decodes the label map (its fc is a conv), so it "
                     "was not trained with --use_vae and never used this encoder")
    options = generator_options(facts, config, use_e, opt)
    spec = registry.get("generators", GENERATOR_PLUGIN)
    options = spec.parse_options(options).model_dump(mode="json")
    version = registry.entries("generators")[GENERATOR_PLUGIN].version
    info = RunInfo(generator=GENERATOR_PLUGIN, generator_version=version, options=options, facts=config.facts,
                   use_instance=config.space.use_instance, crop_size=config.crop_size,
                   aspect_ratio=config.aspect_ratio, origin=origin)
    try:
        generator = info.build_generator()
    except (ValueError, SpadekitError) as err:
        raise SpadekitError(f"{names['G']} does not fit the {config.name} image geometry ({config.describe()}): "
                            f"{str(err).rstrip('.')}.") from None

    expected = generator.state_dict()
    what = f"spadekit's SPADE generator for {config.name}"
    own = {k: v for k, v in expected.items() if not k.startswith(ENCODER_PREFIX)}
    state, found = convert_state(g, own, names["G"], what)
    notes += found
    counts = {"generator": (len(g), count_parameters(generator) - _encoder_parameters(generator))}
    if use_e:
        enc = {k: v for k, v in expected.items() if k.startswith(ENCODER_PREFIX)}
        enc_state, found = convert_state(e, enc, names["E"], f"the {config.name} VAE encoder", ENCODER_PREFIX)
        state.update(enc_state)
        notes += found
        counts["encoder"] = (len(e), _encoder_parameters(generator))
    load_state(generator, state, names["G"] if not use_e else f"{names['G']} + {names['E']}")

    d_state = d_options = None
    if d is not None:
        d_options = discriminator_options(d, names["D"])
        discriminator = MultiscaleDiscriminator(config.space.semantic_nc + 3, **d_options)
        mapped, found = convert_state(d, discriminator.state_dict(), names["D"], "the multi-scale discriminator")
        notes += found
        load_state(discriminator, mapped, names["D"])
        d_state = discriminator.state_dict()
        counts["discriminator"] = (len(d), count_parameters(discriminator))
    return Converted(info, generator.state_dict(), d_state, d_options, counts, notes)


def _encoder_parameters(generator: nn.Module) -> int:
    encoder = getattr(generator, "encoder", None)
    return 0 if encoder is None else count_parameters(encoder)


def recipe_text(config: NvlabsConfig, options: dict[str, Any], d_options: dict[str, Any] | None,
                run_dir: Path) -> str:
    """The resolved recipe to fine-tune the imported model (`train.init_from` = the run directory) with the
    dataset's official data settings and the imported networks' options."""
    overrides: dict[str, Any] = {
        "data.use_instance": config.space.use_instance,
        "data.preprocess": config.preprocess,
        "data.load_size": config.load_size,
        "data.crop_size": config.crop_size,
        "data.aspect_ratio": config.aspect_ratio,
        "model.name": GENERATOR_PLUGIN,
        **{f"model.{key}": value for key, value in options.items()},
        **{f"discriminator.{key}": value for key, value in (d_options or {}).items()},
        "train.init_from": str(Path(run_dir).resolve()),
        "bench.generator_weights": "raw",  # Table 1's protocol: the official code keeps no EMA
    }
    if config.name in PAPER_DATASETS:
        overrides["bench.segmenter"] = PAPER_DATASETS[config.name].segmenter
    header = (f"# Recipe for fine-tuning the official SPADE {config.name} model imported into {run_dir}\n"
              "# (train.init_from). Set data.shards to your prepared dataset and train into a new run directory;\n"
              "# the [data] and [model] settings are the official ones, [bench] is Table 1's protocol.\n\n")
    return header + load_recipe(None, overrides).resolved_toml()


# ----------------------------------------------------------------------------------- run directory


def import_nvlabs(ckpt_dir: Path, dataset: str | NvlabsConfig, out: Path, which: str = "latest",
                  force: bool = False) -> ImportSummary:
    """Turn `{which}_net_{G,E,D}.pth` in `ckpt_dir` into the run directory `out`.

    `dataset` is coco, ade20k or cityscapes, or an explicit `NvlabsConfig` (a label space and geometry of
    your own). `out` must be new or empty unless `force`; it appears complete or not at all.
    """
    config = dataset if isinstance(dataset, NvlabsConfig) else official_config(dataset)
    ckpt_dir, out = Path(ckpt_dir), Path(out)
    paths = find_checkpoints(ckpt_dir, which)
    check_out(out, ckpt_dir, force)
    opt = read_opt_txt(ckpt_dir)
    config, notes = configure(opt, config) if opt is not None else (config, [])

    states = {}
    for role, path in paths.items():
        states[role], stripped = read_state_dict(path)
        if stripped:
            notes.append(f"{path.name}: the 'module.' prefix of a DataParallel save was stripped")
    names = {role: str(ckpt_dir / f"{which}_net_{role}.pth") for role in ROLES}
    origin = f"spadekit import nvlabs {config.name} {ckpt_dir.resolve()}"
    converted = convert(config, states["G"], states.get("E"), states.get("D"), names, origin, opt)
    if opt is None:
        notes.insert(0, _assumed_defaults(ckpt_dir, config, converted.info.options))
    notes += converted.notes
    if "D" not in paths:
        notes.append("no discriminator file: fine-tuning starts D from scratch (the official releases have none)")

    files = []
    for role, path in paths.items():
        if ROLES[role] in converted.counts:
            keys, params = converted.counts[ROLES[role]]
            files.append(ImportedFile(ROLES[role], path.resolve(), sha256_file(path), keys, params))
    _write_run(out, config, converted, files, opt)
    return ImportSummary(out, config.name, converted.info.options, files, converted.discriminator_options, notes,
                         image_size=converted.info.context.image_size,
                         opt_file=None if opt is None else opt.path.resolve(),
                         from_opt={} if opt is None else opt.used())


def _assumed_defaults(ckpt_dir: Path, config: NvlabsConfig, options: dict[str, Any]) -> str:
    """What the import took for granted without opt.txt: a model trained with other options would otherwise
    load silently and synthesize at the wrong layout."""
    assumed = replace(config, num_upsampling_layers=options["num_upsampling_layers"]).describe()
    pickle = (f"; {OPT_PKL} was not read (unpickling runs code), put the run's opt.txt beside it"
              if (ckpt_dir / OPT_PKL).exists() else "")
    return (f"no opt.txt in {ckpt_dir}: the official defaults of {config.name} ({assumed}) were assumed, and ngf, "
            f"the head and the SPADE norm read off the weights{pickle}")


def _write_run(out: Path, config: NvlabsConfig, converted: Converted, files: list[ImportedFile],
               opt: OfficialOptions | None) -> None:
    """The run directory: run.json, the fine-tuning recipe and the step-0 checkpoint, published at once."""
    sources = {f.role: {"path": str(f.path), "sha256": f.sha256} for f in files}
    if opt is not None:
        sources["options"] = {"path": str(opt.path.resolve()), "sha256": sha256_file(opt.path)}
    checkpoint: dict[str, Any] = {
        GENERATOR: converted.generator,
        EMA: dict(converted.generator),  # an imported model is its own average (same tensors, saved once)
        "step": 0,
        "imported_from": sources,
    }
    if converted.discriminator is not None:
        checkpoint[DISCRIMINATOR] = converted.discriminator
    text = recipe_text(config, converted.info.options, converted.discriminator_options, out)
    write_run(out, converted.info, text, checkpoint, save=save_step_checkpoint)  # looked up here: tests patch it
