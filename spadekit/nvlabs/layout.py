"""What an official generator's weights say about the options it was trained with, settled with its opt.txt.

The weights show the width (ngf), the head (a conv on the label map, or a Linear layer on a z_dim latent), the
up_4 block that only 'most' builds, SPADE's kernel and hidden width, spectral norm, and whether SPADE's
parameter-free norm keeps running statistics (batch norm) or not (instance norm). They cannot show 'normal'
from 'more' behind a conv head, the crop size and aspect ratio, or synchronized from plain batch norm: opt.txt
decides those, and the dataset's defaults stand in without one. Where opt.txt and the weights disagree the
import stops (`check_opt`): the file belongs to another run, and either guess could synthesize wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from spadekit.errors import SpadekitError
from spadekit.nvlabs.configs import (
    OFFICIAL_DATASETS,
    NvlabsConfig,
    head_cells,
    image_size,
    official_semantic_nc,
    upsamplings,
)
from spadekit.nvlabs.options import OfficialOptions

_FIX = ("the opt.txt belongs to another training run than the weights, or was edited: put that run's own opt.txt "
        "beside them")


@dataclass(frozen=True)
class WeightFacts:
    """The training options an official SPADEGenerator state dict shows."""

    semantic_nc: int  # input channels of SPADE's shared conv
    ngf: int
    most: bool  # has the up_4 block of num_upsampling_layers 'most'
    z_dim: int | None  # the Linear head's latent size (VAE or noise input); None for the conv head
    head_features: int  # fc's outputs: 16*ngf*sh*sw for the Linear head
    running_stats: bool  # SPADE's norm keeps running statistics: (synchronized) batch norm, not instance norm
    kernel_size: int  # SPADE's convs
    hidden: int  # SPADE's shared conv width
    spectral: bool  # spectral norm on the residual blocks' convs


def read_weights(g: dict[str, torch.Tensor], where: str) -> WeightFacts:
    needed = ("fc.weight", "conv_img.weight", "head_0.norm_0.mlp_shared.0.weight")
    absent = [key for key in needed if key not in g]
    mlp = g.get("head_0.norm_0.mlp_shared.0.weight")
    if absent or mlp.dim() != 4:
        raise SpadekitError(
            f"{where} is not an official SPADE generator (it lacks {', '.join(absent) or 'a conv mlp_shared'}); "
            "only --netG spade checkpoints can be imported."
        )
    fc = g["fc.weight"]
    most = any(key.startswith("up_4.") for key in g)
    return WeightFacts(
        semantic_nc=int(mlp.shape[1]),
        ngf=int(g["conv_img.weight"].shape[1]) * (2 if most else 1),
        most=most,
        z_dim=int(fc.shape[1]) if fc.dim() == 2 else None,
        head_features=int(fc.shape[0]),
        running_stats="head_0.norm_0.param_free_norm.running_mean" in g,
        kernel_size=int(mlp.shape[-1]),
        hidden=int(mlp.shape[0]),
        spectral="head_0.conv_0.weight_orig" in g,
    )


def generator_options(facts: WeightFacts, config: NvlabsConfig, has_encoder: bool,
                      opt: OfficialOptions | None = None) -> dict[str, Any]:
    """The `spade` plugin options that rebuild the official generator: the weights' facts, the configuration's
    schedule where the weights cannot tell, and opt.txt's norm (batch vs synchronized batch)."""
    options: dict[str, Any] = {
        "ngf": facts.ngf,
        "num_upsampling_layers": "most" if facts.most else config.num_upsampling_layers,
        "norm": "sync_batch" if facts.running_stats else "instance",
        "kernel_size": facts.kernel_size,
        "hidden": facts.hidden,
        "spectral": facts.spectral,
    }
    norm = opt.spade_norm() if opt is not None else None
    if norm is not None:
        options["norm"] = norm.norm
    if facts.z_dim is not None:  # Linear: decodes a latent z (VAE, or noise input)
        options["z_dim"] = facts.z_dim
        if has_encoder:
            options["use_vae"] = True
        else:
            options["input"] = "noise"
        if not facts.most:  # the latent fills a 16*ngf x sh x sw map: sh*sw tells 'normal' from 'more'
            fitting = [n for n in ("normal", "more") if head_cells(config, n) * 16 * facts.ngf == facts.head_features]
            if fitting and options["num_upsampling_layers"] not in fitting:
                options["num_upsampling_layers"] = fitting[0]
    return options


def check_channels(facts: WeightFacts, config: NvlabsConfig, where: str) -> None:
    """The weights' input channels against the dataset's label space (no opt.txt to name)."""
    if facts.semantic_nc == config.space.semantic_nc:
        return
    fits = [name for name in OFFICIAL_DATASETS if official_semantic_nc(name) == facts.semantic_nc]
    guess = f"as {fits[0]} has" if fits else "which no official configuration has"
    raise SpadekitError(
        f"{where} was trained with {facts.semantic_nc} input channels ({guess}), but the {config.name} configuration "
        f"has {config.space.semantic_nc}; pass the --dataset the checkpoint was trained on."
    )


# ------------------------------------------------------------------------------- opt.txt vs weights


def check_opt(opt: OfficialOptions, facts: WeightFacts, config: NvlabsConfig, names: dict[str, str],
              has_encoder: bool) -> None:
    """Stop at the first option of opt.txt the weights contradict, naming the option, its value and what the
    weights say. `config` is already configured from opt.txt; `names` are the G and E file names."""
    if opt.value("netG", "spade") != "spade":
        raise SpadekitError(f"{opt.says('netG')}, but only SPADE generators (--netG spade) can be imported.")
    for options, holds, weights_say in _claims(opt, facts, config, names, has_encoder):
        if any(name in opt for name in options) and not holds:
            raise SpadekitError(f"{opt.says(*options)}, but {weights_say}; {_FIX}.")
    _check_geometry(opt, facts, config)


def _check_geometry(opt: OfficialOptions, facts: WeightFacts, config: NvlabsConfig) -> None:
    """The image sides must be whole multiples of the first feature map's: the official generator makes
    (crop_size // 2^n) * 2^n wide images, so no training with other sizes got past its first loss."""
    geometry = ("crop_size", "aspect_ratio", "num_upsampling_layers")
    n = upsamplings("most" if facts.most else config.num_upsampling_layers)
    height, width = image_size(config)
    if any(name in opt for name in geometry) and (height % 2**n or width % 2**n or min(height, width) < 2**n):
        raise SpadekitError(
            f"{opt.says(*geometry)}: {width}x{height} images, but {n} upsamplings make sides that are multiples of "
            f"{2**n}, so no official training ran with these options; restore the opt.txt that training wrote."
        )


def _claims(opt: OfficialOptions, facts: WeightFacts, config: NvlabsConfig, names: dict[str, str],
            has_encoder: bool):
    """(options, whether the weights agree, what they say), in the order a reader would check them; a claim
    counts when opt.txt sets one of its options."""
    g = names["G"]
    yield from _channel_claims(opt, facts, config, g)
    most = opt.value("num_upsampling_layers") == "most"
    yield (("num_upsampling_layers",), most == facts.most,
           f"{g} {'has an' if facts.most else 'has no'} up_4 block, which only 'most' builds")
    final = facts.ngf // 2 if facts.most else facts.ngf
    yield ("ngf",), opt.value("ngf") == facts.ngf, f"{g} has width {facts.ngf} (conv_img.weight takes {final} channels)"
    yield from _head_claims(opt, facts, config, names, has_encoder)
    yield from _norm_claims(opt, facts, g)


def _channel_claims(opt: OfficialOptions, facts: WeightFacts, config: NvlabsConfig, g: str):
    channels = config.space.semantic_nc
    yield (("label_nc", "contain_dontcare_label", "no_instance"), facts.semantic_nc == channels,
           f"that is {channels} input channels and {g} takes {facts.semantic_nc} (head_0.norm_0.mlp_shared.0.weight)")


def _head_claims(opt: OfficialOptions, facts: WeightFacts, config: NvlabsConfig, names: dict[str, str],
                 has_encoder: bool):
    g, linear = names["G"], facts.z_dim is not None
    if opt.value("use_vae") and linear:
        yield ("use_vae",), has_encoder, f"there is no {names['E']}, the encoder --use_vae training saves beside {g}"
    head = (f"{g} decodes a latent z of {facts.z_dim} values (fc.weight is a Linear layer), which only --use_vae "
            "builds") if linear else f"{g} decodes the label map (fc.weight is a conv), which --use_vae replaces"
    yield ("use_vae",), opt.value("use_vae") == linear, head
    if not linear:
        return
    yield ("z_dim",), opt.value("z_dim") == facts.z_dim, f"{g}'s fc.weight takes a z of {facts.z_dim} values"
    schedule = "most" if facts.most else config.num_upsampling_layers
    cells = head_cells(config, schedule)
    yield (("crop_size", "aspect_ratio", "num_upsampling_layers"), cells * 16 * facts.ngf == facts.head_features,
           f"that is a first feature map of {cells} cells x {16 * facts.ngf} channels and {g}'s fc.weight makes "
           f"{facts.head_features} values")


def _norm_claims(opt: OfficialOptions, facts: WeightFacts, g: str):
    norm = opt.spade_norm()
    if norm is None:
        return
    has = "has" if facts.spectral else "has no"
    yield ("norm_G",), norm.spectral == facts.spectral, f"{g} {has} spectral norm on its convs (weight_orig keys)"
    k = facts.kernel_size
    yield ("norm_G",), norm.kernel_size == k, f"{g}'s SPADE convs are {k}x{k} (head_0.norm_0.mlp_shared.0.weight)"
    stats = ("keeps running statistics in SPADE (param_free_norm.running_mean), as batch norm does" if
             facts.running_stats else "keeps no running statistics in SPADE, as instance norm")
    yield ("norm_G",), (norm.norm != "instance") == facts.running_stats, f"{g} {stats}"
