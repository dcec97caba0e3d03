"""The official training's `opt.txt`: the options a checkpoint folder was trained with, read as plain text.

NVlabs/SPADE `BaseOptions.save_options` writes checkpoints/<name>/opt.txt when training starts: one line per
option, sorted by name, `'{:>25}: {:<30}{}'.format(name, str(value), comment)`, the comment being
`'\\t[default: X]'` where the value is not the parser's default. `print_options` prints the same lines
between a '----------------- Options ---------------' header and a '----------------- End -------------------'
footer, so a copy of the console log reads too. opt.pkl beside it holds the same options pickled and is
never opened: unpickling runs whatever code the file names.

Only the options that shape the generator and the run's images are typed (`USED`); every other line is
checked for form and ignored. `configure` applies the geometry and label-space options to a dataset's
configuration; the generator options are settled against the weights in `spadekit.nvlabs.layout`.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spadekit.errors import SpadekitError
from spadekit.imported_run import read_opt_text
from spadekit.nn.norm_names import ParamFreeNorm
from spadekit.nvlabs.configs import NvlabsConfig
from spadekit.preprocess import Mode

OPT_TXT = "opt.txt"
OPT_PKL = "opt.pkl"

_FRAME = re.compile(r"-{5,} *(Options|End) *-{5,}")  # print_options' header and footer
_LINE = re.compile(r"\s*([A-Za-z_]\w*): ?(.*)")  # '{:>25}: {:<30}' -- the name right-aligned, then the value
_COMMENT = re.compile(r"\s+\[default: .*\]$")  # '\t[default: X]' (an editor may have turned the tab to spaces)
_GEOMETRY = ("crop_size", "aspect_ratio", "num_upsampling_layers", "load_size")  # NvlabsConfig fields, same names
_HOW = "restore the opt.txt that training wrote, or remove it to assume the dataset's official defaults"


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise ValueError(text)
    return value


def _flag(text: str) -> bool:
    if text not in ("True", "False"):  # str(bool), as the official code writes it
        raise ValueError(text)
    return text == "True"


def _upsampling(text: str) -> str:
    if text not in ("normal", "more", "most"):
        raise ValueError(text)
    return text


_WHOLE, _FLAG = (_positive_int, "a positive whole number"), (_flag, "True or False")
_TYPES: dict[str, tuple[Callable[[str], Any], str]] = {
    "dataset_mode": (str, "a name"),
    "crop_size": _WHOLE,
    "aspect_ratio": (_positive_float, "a positive number"),
    "load_size": _WHOLE,
    "preprocess_mode": (str, "a name"),
    "num_upsampling_layers": (_upsampling, "normal, more or most"),
    "label_nc": _WHOLE,
    "contain_dontcare_label": _FLAG,
    "no_instance": _FLAG,
    "netG": (str, "a name"),
    "ngf": _WHOLE,
    "norm_G": (str, "a name"),
    "use_vae": _FLAG,
    "z_dim": _WHOLE,
}
USED = tuple(_TYPES)  # the options the import reads, in the order the summary lists them


@dataclass(frozen=True)
class Option:
    value: Any  # typed
    text: str  # as written
    line: int


@dataclass(frozen=True)
class SpadeNorm:
    """A SPADE generator's norm_G in the spade plugin's terms."""

    norm: ParamFreeNorm
    kernel_size: int
    spectral: bool


_PARAM_FREE: dict[str, ParamFreeNorm] = {"syncbatch": "sync_batch", "batch": "batch", "instance": "instance"}


def parse_spade_norm(norm_g: str) -> SpadeNorm | None:
    """As the official SPADEResnetBlock reads norm_G: 'spectral' anywhere puts spectral norm on the block's
    convs, and the rest must be spade<norm><k>x<k> (SPADE's parameter-free norm and kernel); None otherwise."""
    match = re.match(r"spade(\D+)(\d)x\d", norm_g.replace("spectral", ""))
    if match is None or match.group(1) not in _PARAM_FREE:
        return None
    return SpadeNorm(_PARAM_FREE[match.group(1)], int(match.group(2)), "spectral" in norm_g)


@dataclass(frozen=True)
class OfficialOptions:
    """The USED options an opt.txt sets, typed, with the line each came from (for messages)."""

    path: Path
    options: dict[str, Option]

    def __contains__(self, name: str) -> bool:
        return name in self.options

    def value(self, name: str, default: Any = None) -> Any:
        option = self.options.get(name)
        return default if option is None else option.value

    def says(self, *names: str) -> str:
        """'DIR/opt.txt says ngf 64 (line 30)', for the named options the file sets."""
        parts = [f"{name} {self.options[name].text} (line {self.options[name].line})"
                 for name in names if name in self.options]
        listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        return f"{self.path} says {listed}"

    def used(self) -> dict[str, str]:
        """The options the import took from the file, as written, in USED order."""
        return {name: self.options[name].text for name in USED if name in self.options}

    def missing(self) -> list[str]:
        return [name for name in USED if name not in self.options]

    def spade_norm(self) -> SpadeNorm | None:
        """norm_G as a SpadeNorm (None when the file does not set it); a norm_G no SPADE generator reads is an
        error naming the line."""
        if "norm_G" not in self:
            return None
        norm = parse_spade_norm(self.value("norm_G"))
        if norm is None:
            raise SpadekitError(
                f"{self.says('norm_G')}, which is no SPADE generator's norm (spectralspade<norm><k>x<k> with norm "
                f"syncbatch, batch or instance, such as spectralspadesyncbatch3x3); {_HOW}."
            )
        return norm


# ------------------------------------------------------------------------------------------ reading


def read_opt_txt(ckpt_dir: Path) -> OfficialOptions | None:
    """The opt.txt of a checkpoint folder, or None when it has none. Bytes that are not UTF-8 (a path in
    another encoding) are replaced: no option the import reads can hold them."""
    path = Path(ckpt_dir) / OPT_TXT
    text = read_opt_text(path)
    return None if text is None else parse_opt_txt(text, path)


def parse_opt_txt(text: str, path: Path) -> OfficialOptions:
    """The USED options of an opt.txt's text; a line that is not 'name: value', a repeated option or a value
    of the wrong type is one sentence naming the file and the line."""
    found: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or _FRAME.fullmatch(line.strip()):
            continue
        name, value = _split(line, number, path)
        if name in found:
            raise SpadekitError(f"{path} line {number} sets {name} again (first on line {found[name][1]}); {_HOW}.")
        found[name] = (value, number)
    if not found:
        raise SpadekitError(f"{path} holds no 'name: value' option lines; {_HOW}.")
    options = {name: _typed(name, *found[name], path) for name in USED if name in found}
    return OfficialOptions(path, options)


def _split(line: str, number: int, path: Path) -> tuple[str, str]:
    match = _LINE.fullmatch(line)
    if match is None:
        shown = line.strip()[:60]
        raise SpadekitError(f"{path} line {number} is not an option line of the official 'name: value' format "
                            f"({shown!r}); {_HOW}.")
    return match.group(1), _COMMENT.sub("", match.group(2)).strip()


def _typed(name: str, text: str, number: int, path: Path) -> Option:
    parse, expected = _TYPES[name]
    try:
        return Option(parse(text), text, number)
    except ValueError:
        raise SpadekitError(f"{path} line {number} gives {name} {text!r}, which is not {expected}; {_HOW}.") from None


# ------------------------------------------------------------------------------------ configuration


def configure(opt: OfficialOptions, config: NvlabsConfig) -> tuple[NvlabsConfig, list[str]]:
    """`config` with the image geometry and instance-edge choice of opt.txt, checked against the dataset's label
    space (which --dataset still gives: class names and colours); notes on what opt.txt could not decide."""
    changes: dict[str, Any] = {name: opt.value(name) for name in _GEOMETRY if name in opt}
    notes = []
    mode = opt.value("preprocess_mode")
    if mode in typing.get_args(Mode):
        changes["preprocess"] = mode
    elif mode is not None:
        notes.append(f"{opt.says('preprocess_mode')}, which spadekit does not implement: the fine-tuning recipe "
                     f"uses {config.preprocess}")
    if "no_instance" in opt:
        changes["use_instance"] = _instance_edges(opt, config)
    config = replace(config, **changes)
    _check_label_channels(opt, config)
    dataset_mode = opt.value("dataset_mode")
    if dataset_mode is not None and dataset_mode != config.name:
        notes.append(f"{opt.says('dataset_mode')}; the class names and colours are those of {config.name}")
    missing = opt.missing()
    if missing:
        notes.append(f"{opt.path} does not set {', '.join(missing)}: the {config.name} defaults and the weights "
                     "decide those")
    return config, notes


def _instance_edges(opt: OfficialOptions, config: NvlabsConfig) -> bool:
    """Whether the generator takes the instance-edge channel: not no_instance, which needs instance maps."""
    if not opt.value("no_instance") and not config.facts.has_instances:
        raise SpadekitError(
            f"{opt.says('no_instance')}: the generator takes an instance-edge channel, but the {config.name} label "
            "space has no instance maps; pass the --dataset the model was trained on."
        )
    return not opt.value("no_instance")


def _check_label_channels(opt: OfficialOptions, config: NvlabsConfig) -> None:
    """label_nc + contain_dontcare_label must give the dataset's one-hot channels. Only the sum is compared:
    official ADE20K is label_nc 150 + don't-care where spadekit names 151 classes ('other' first)."""
    if "label_nc" not in opt or "contain_dontcare_label" not in opt:
        return
    channels = opt.value("label_nc") + int(opt.value("contain_dontcare_label"))
    space = config.space
    if channels != space.one_hot_nc:
        dontcare = " + don't-care" if space.dontcare else ""
        raise SpadekitError(
            f"{opt.says('label_nc', 'contain_dontcare_label')}, {channels} label channels, but the {config.name} "
            f"label space has {space.one_hot_nc} ({space.label_nc} classes{dontcare}); pass the --dataset the model "
            "was trained on."
        )
