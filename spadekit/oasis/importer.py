"""`spadekit import oasis`: the reference OASIS checkpoints (boschresearch/OASIS) as a spadekit run directory.

The reference saves `CKPT_DIR/models/<iter>_G.pth`, `_D.pth` and (unless --no_EMA) `_EMA.pth` with
`torch.save(net.state_dict())` of the bare networks (no `module.` prefix; one is stripped if present), `<iter>`
being an iteration number, `latest` (every 10,000 iterations and at the end; `latest_iter.txt` says which) or
`best` (the best FID; `best_iter.txt`). `--iter latest` takes the `latest_` files, else the highest numbered
ones, else the `best_` files; `--iter best|N` names them.

Keys. The `oasis` plugin keeps the reference's submodule names, so a key maps unchanged except for spectral
norm: the reference's (older) `torch.nn.utils.spectral_norm` stores `X.weight_orig / weight_u / weight_v`, our
parametrization `X.parametrizations.weight.original / .0._u / .0._v`; both divide by the stored u^T W v in eval
mode. A missing `num_batches_tracked` (never read in eval mode) is set to 0.

Label channels (`OasisOptions.oasis_order`). OASIS's one-hot puts its don't-care class first; spadekit's
semantics put COCO-Stuff's "unlabeled" last (channel 182; OASIS's class i >= 1 is our i - 1), while ADE20K
(0 "other") and Cityscapes (labelId 0 "unlabeled") are in the same order in both. The input channels of every
conv that reads the label map (`fc.weight` and each SPADE's `mlp_shared.0.weight`, after the z_dim noise
channels, which stay first) and the class outputs of D's `layer_up_last` (after output 0, "fake") are permuted
accordingly, so the imported networks compute on our semantics exactly what the reference computes on its own.

Options come off the weights (ngf, 3D noise and z_dim, SPADE's kernel and width, spectral norm, whether SPADE's
norm keeps running statistics); the reference's opt.txt beside `models/`, when there, decides batch vs
synchronized batch norm and the fine-tuning recipe's training settings, and must not contradict the weights
(its dataset_mode, channels_G, z_dim, no_3dnoise, spade_ks, num_res_blocks, no_spectral_norm, param_free_norm).
OASIS reads no instance maps: the run's label space has no instance-edge channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from spadekit import registry
from spadekit.config import load_recipe
from spadekit.datasets import PAPER_DATASETS
from spadekit.errors import SpadekitError
from spadekit.fileio import sha256_file
from spadekit.generator import GeneratorContext, count_parameters
from spadekit.imported_run import check_out, read_opt_text, write_run, zero_missing_batch_counters
from spadekit.nn.layers import OFFICIAL_SPECTRAL_KEYS
from spadekit.nn.semantics import LabelSpace
from spadekit.run_info import DISCRIMINATOR, EMA, GENERATOR, RunInfo, few_keys, load_state
from spadekit.weights import read_state_dict

PLUGIN = "oasis"
OASIS_DATASETS = ("ade20k", "cityscapes", "coco")  # the reference's --dataset_mode values
# OASIS's semantic_nc per dataset (its dataloaders: label_nc + the don't-care class)
OASIS_SEMANTIC_NC = {"ade20k": 151, "cityscapes": 35, "coco": 183}
ROLES = {"G": GENERATOR, "EMA": EMA, "D": DISCRIMINATOR}  # file suffix -> our checkpoint key
MODELS = "models"
_SN = {suffix: "." + ours for suffix, ours in OFFICIAL_SPECTRAL_KEYS.items()}
_HOW_OPT = "restore the opt.txt that the reference's training wrote, or remove it"


@dataclass(frozen=True)
class ImportedFile:
    role: str  # generator | ema | discriminator
    path: Path
    sha256: str
    keys: int
    parameters: int


@dataclass
class OasisImportSummary:
    run_dir: Path
    dataset: str
    iteration: str  # the files' prefix: latest, best or a number
    iteration_number: int | None  # the training iteration, when known
    options: dict[str, Any]
    files: list[ImportedFile]
    notes: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)  # (height, width)
    opt_file: Path | None = None


# ------------------------------------------------------------------------------------------------ files


def find_models(ckpt_dir: Path) -> tuple[Path, Path]:
    """(the folder of the .pth files, the experiment folder that holds opt.txt and latest_iter.txt): CKPT_DIR
    may be the experiment folder (with models/) or its models/ folder itself."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        state = "is a file, not a folder" if ckpt_dir.exists() else "does not exist"
        raise SpadekitError(f"Checkpoint folder {ckpt_dir} {state}; give the OASIS experiment folder (e.g. "
                            "checkpoints/oasis_ade20k_pretrained) or its models/ folder.")
    if (ckpt_dir / MODELS).is_dir():
        return ckpt_dir / MODELS, ckpt_dir
    return ckpt_dir, (ckpt_dir.parent if ckpt_dir.name == MODELS else ckpt_dir)


def _prefixes(models: Path) -> set[str]:
    """The iteration prefixes of the generator files (`<iter>_G.pth` or `<iter>_EMA.pth`) in `models`."""
    found = set()
    for path in models.glob("*.pth"):
        match = re.fullmatch(r"(.+)_(G|EMA)\.pth", path.name)
        if match:
            found.add(match.group(1))
    return found


def find_iteration(models: Path, which: str = "latest") -> tuple[str, list[str]]:
    """The file prefix to import for `--iter which`, and a note when `latest` had to fall back."""
    prefixes = _prefixes(models)
    numbered = sorted(int(p) for p in prefixes if p.isdigit())
    held = ", ".join(sorted(p.name for p in models.glob("*.pth"))) or "no .pth files"
    if not prefixes:
        raise SpadekitError(f"{models} holds no OASIS generator file (<iter>_G.pth or <iter>_EMA.pth; it holds "
                            f"{held}); give the experiment folder that the reference's training wrote.")
    if which == "latest":
        if "latest" in prefixes:
            return "latest", []
        if numbered:
            return str(numbered[-1]), []
        if "best" in prefixes:
            return "best", [f"{models} has no latest_ or numbered files: the best_ files (best FID) were imported"]
        raise SpadekitError(f"{models} has no latest_, best_ or numbered generator files (it holds {held}); pass "
                            "--iter with the prefix of the files to import.")
    if not (which in ("best",) or which.isdigit()):
        raise SpadekitError(f"--iter {which!r} is not latest, best or an iteration number; pass one of those.")
    if which.isdigit():
        which = str(int(which))
    if which not in prefixes:
        choices = ", ".join(["latest"] * ("latest" in prefixes) + ["best"] * ("best" in prefixes)
                            + [str(n) for n in numbered])
        raise SpadekitError(f"{models} has no {which}_G.pth or {which}_EMA.pth; pass --iter {choices}.")
    return which, []


def _iteration_number(experiment: Path, prefix: str) -> int | None:
    if prefix.isdigit():
        return int(prefix)
    path = experiment / f"{prefix}_iter.txt"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------ opt.txt


def read_opt_txt(experiment: Path) -> tuple[Path, dict[str, tuple[str, int]]] | None:
    """The reference's opt.txt ('{name:>25}: {value:<30}' lines, '\\t[default: X]' where not the default) as
    name -> (value as written, line number); None without one. opt.pkl is never opened (unpickling runs code)."""
    path = experiment / "opt.txt"
    text = read_opt_text(path)
    if text is None:
        return None
    options: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("-----"):
            continue
        match = re.fullmatch(r"\s*([A-Za-z_]\w*): ?(.*)", line)
        if match is None:
            raise SpadekitError(f"{path} line {number} is not an option line of the reference's 'name: value' "
                                f"format ({stripped[:60]!r}); {_HOW_OPT}.")
        options[match.group(1)] = (re.sub(r"\s+\[default: .*\]$", "", match.group(2)).strip(), number)
    return path, options


class _Opt:
    """Typed access to opt.txt's options, with messages naming the file and the line."""

    def __init__(self, found: tuple[Path, dict[str, tuple[str, int]]] | None):
        self.path, self.options = found if found is not None else (None, {})

    def __contains__(self, name: str) -> bool:
        return name in self.options

    def says(self, name: str) -> str:
        value, line = self.options[name]
        return f"{self.path} says {name} {value} (line {line})"

    def text(self, name: str) -> str | None:
        return self.options[name][0] if name in self.options else None

    def flag(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value not in ("True", "False"):
            raise SpadekitError(f"{self.says(name)}, which is not True or False; {_HOW_OPT}.")
        return value == "True"

    def number(self, name: str, kind: type = float) -> Any:
        value = self.text(name)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            raise SpadekitError(f"{self.says(name)}, which is not a number; {_HOW_OPT}.") from None


# ---------------------------------------------------------------------------------- options from weights


def generator_options(g: dict[str, torch.Tensor], where: str, dataset: str, opt: _Opt) -> dict[str, Any]:
    """The oasis plugin's options that rebuild the generator of state dict `g`, checked against opt.txt."""
    needed = ("fc.weight", "conv_img.weight", "body.0.norm_0.mlp_shared.0.weight")
    absent = [key for key in needed if key not in g]
    if absent:
        raise SpadekitError(f"{where} is not an OASIS generator (it lacks {', '.join(absent)}); give the "
                            "<iter>_G.pth or <iter>_EMA.pth that the reference saved.")
    cond = int(g["fc.weight"].shape[1])  # the noise channels (z_dim, 64 by default) + the label channels
    semantic_nc = OASIS_SEMANTIC_NC[dataset]
    z_dim = cond - semantic_nc
    others = [name for name, nc in OASIS_SEMANTIC_NC.items() if name != dataset and cond in (nc, nc + 64)]
    if z_dim < 0 or (z_dim not in (0, 64) and others):
        guess = f"as OASIS's {others[0]} has" if others else "fewer than its label channels"
        raise SpadekitError(
            f"{where} takes {cond} input channels ({guess}), but OASIS's {dataset} has {semantic_nc} label "
            f"channels (+ 64 noise channels); pass the --dataset the checkpoint was trained on."
        )
    mlp = g["body.0.norm_0.mlp_shared.0.weight"]
    options: dict[str, Any] = {
        "ngf": int(g["conv_img.weight"].shape[1]),
        "noise_3d": z_dim > 0,
        "num_res_blocks": len({key.split(".")[1] for key in g if key.startswith("body.")}),
        "kernel_size": int(mlp.shape[-1]),
        "hidden": int(mlp.shape[0]),
        "spectral": "body.0.conv_0.weight_orig" in g,
        "norm": "sync_batch" if "body.0.norm_0.first_norm.running_mean" in g else "instance",
    }
    if z_dim > 0:
        options["z_dim"] = z_dim
    _check_opt(opt, options, where)
    if opt.text("param_free_norm") == "batch":
        options["norm"] = "batch"
    return options


def _check_opt(opt: _Opt, options: dict[str, Any], where: str) -> None:
    """Stop at the first option of opt.txt that the weights contradict."""
    norm = {"syncbatch": "sync_batch", "batch": "sync_batch", "instance": "instance"}
    claims = [
        ("channels_G", lambda: opt.number("channels_G", int) == options["ngf"], f"width {options['ngf']} "
         "(conv_img.weight)"),
        ("no_3dnoise", lambda: opt.flag("no_3dnoise") == (not options["noise_3d"]),
         "3D noise channels" if options["noise_3d"] else "no 3D noise channels"),
        ("z_dim", lambda: not options["noise_3d"] or opt.number("z_dim", int) == options["z_dim"],
         f"{options.get('z_dim')} noise channels (fc.weight)"),
        ("spade_ks", lambda: opt.number("spade_ks", int) == options["kernel_size"],
         f"{options['kernel_size']}x{options['kernel_size']} SPADE convs"),
        ("num_res_blocks", lambda: opt.number("num_res_blocks", int) == options["num_res_blocks"],
         f"{options['num_res_blocks']} residual blocks"),
        ("no_spectral_norm", lambda: opt.flag("no_spectral_norm") == (not options["spectral"]),
         "spectral norm (weight_orig keys)" if options["spectral"] else "no spectral norm"),
        ("param_free_norm", lambda: norm.get(opt.text("param_free_norm")) == options["norm"],
         "running statistics in SPADE (batch norm)" if options["norm"] != "instance" else
         "no running statistics in SPADE (instance norm)"),
    ]
    for name, holds, weights_say in claims:
        if name in opt and not holds():
            raise SpadekitError(f"{opt.says(name)}, but {where} has {weights_say}; the opt.txt belongs to another "
                                "run than the weights: put that run's own opt.txt beside them, or remove it.")


def _check_discriminator(d: dict[str, torch.Tensor], options: dict[str, Any], where: str) -> dict[str, Any]:
    """The discriminator's own option (channels_D), and its agreement with the generator's options."""
    if "layer_up_last.weight" not in d or "body_down.0.conv1.0.bias" not in d:
        raise SpadekitError(f"{where} is not an OASIS discriminator (it lacks layer_up_last.weight or body_down.0"
                            ".conv1.0.bias); give the <iter>_D.pth that the reference saved.")
    spectral = "body_down.0.conv1.0.weight_orig" in d
    if spectral != options["spectral"]:
        has = "has" if spectral else "has no"
        raise SpadekitError(f"{where} {has} spectral norm but the generator files do the opposite; are they of "
                            "one training run?")
    return {"channels_D": int(d["layer_up_last.weight"].shape[1])}


# ------------------------------------------------------------------------------------------ key mapping


def reference_key(ours: str) -> str:
    """Our state-dict key -> the reference's (for messages)."""
    for suffix, mine in _SN.items():
        if ours.endswith(mine):
            return ours[: -len(mine)] + "." + suffix
    return ours


def map_state(reference: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str,
              what: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The reference's state dict under our keys; every key must land on one of `expected` (our module's
    state dict) with its shape, and every one of ours be filled, else one sentence names the keys."""
    spectral = {key[: -len(_SN["weight_orig"])] for key in expected if key.endswith(_SN["weight_orig"])}
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in reference.items():
        module, _, leaf = key.rpartition(".")
        ours = module + _SN[leaf] if module in spectral and leaf in _SN else key
        if ours not in expected:
            unknown.append(key)
        mapped[ours] = value
    if unknown:
        raise SpadekitError(f"{where} has {len(unknown)} key(s) that {what} does not have: {few_keys(unknown)}; is "
                            "it a checkpoint of another network, or of another --dataset?")
    for ours, value in mapped.items():
        if tuple(value.shape) != tuple(expected[ours].shape):
            raise SpadekitError(
                f"{where}: {reference_key(ours)} has shape {tuple(value.shape)} but {what} needs "
                f"{tuple(expected[ours].shape)}; was it trained on another --dataset or with other options?"
            )
    counters = zero_missing_batch_counters(expected, mapped, where)
    notes = [counters] if counters else []
    missing = [reference_key(key) for key in expected if key not in mapped]
    if missing:
        raise SpadekitError(f"{where} lacks {len(missing)} key(s) that {what} needs: {few_keys(missing)}; is the "
                            "file complete?")
    return mapped, notes


def permute_generator(state: dict[str, torch.Tensor], order: list[int], z_dim: int) -> dict[str, torch.Tensor]:
    """OASIS's label channels -> ours in every conv that reads the noise + label tensor (noise channels first)."""
    index = torch.tensor(order) + z_dim
    out = dict(state)
    for key, value in state.items():
        if key == "fc.weight" or key.endswith(".mlp_shared.0.weight"):
            permuted = value.clone()
            permuted[:, index] = value[:, z_dim: z_dim + len(order)]
            out[key] = permuted
    return out


def permute_discriminator(state: dict[str, torch.Tensor], order: list[int]) -> dict[str, torch.Tensor]:
    """OASIS's class outputs (1 + its class index) -> ours (1 + our channel); output 0 ("fake") stays."""
    index = torch.tensor(order) + 1
    out = dict(state)
    for key in ("layer_up_last.weight", "layer_up_last.bias"):
        value = state[key]
        permuted = value.clone()
        permuted[index] = value[1: 1 + len(order)]
        out[key] = permuted
    return out


# ------------------------------------------------------------------------------------------ the import


def import_oasis(ckpt_dir: Path, dataset: str, out: Path | None = None, which: str = "latest",
                 force: bool = False) -> OasisImportSummary:
    """Turn the reference's `models/<iter>_{G,EMA,D}.pth` under `ckpt_dir` into the run directory `out`
    (default runs/<experiment folder name>), new or empty unless `force`; it appears complete or not at all."""
    if dataset not in OASIS_DATASETS:
        raise SpadekitError(f"--dataset {dataset!r} is not one of OASIS's datasets; use ade20k, cityscapes or coco "
                            "(the one the checkpoint was trained on).")
    models, experiment = find_models(Path(ckpt_dir))
    prefix, notes = find_iteration(models, which)
    out = Path(out) if out is not None else Path("runs") / experiment.resolve().name
    check_out(out, models, force)
    opt = _Opt(read_opt_txt(experiment))
    if "dataset_mode" in opt and opt.text("dataset_mode") != dataset:
        raise SpadekitError(f"{opt.says('dataset_mode')}, but --dataset is {dataset}; pass --dataset "
                            f"{opt.text('dataset_mode')} (the label space the checkpoint was trained on).")

    paths = {role: models / f"{prefix}_{role}.pth" for role in ROLES}
    paths = {role: path for role, path in paths.items() if path.is_file()}
    states = {role: read_state_dict(path) for role, path in paths.items()}
    first = "EMA" if "EMA" in states else "G"
    options = generator_options(states[first], str(paths[first]), dataset, opt)
    if "D" in states:
        options.update(_check_discriminator(states["D"], options, str(paths["D"])))
    options.update(_training_options(dataset, opt))
    spec = registry.get("generators", PLUGIN)
    parsed = spec.parse_options(options)
    options = parsed.model_dump(mode="json")

    row = PAPER_DATASETS[dataset]
    recipe = load_recipe(_shipped_recipe(dataset), {f"model.{key}": value for key, value in options.items()})
    info = RunInfo(generator=PLUGIN, generator_version=registry.entries("generators")[PLUGIN].version,
                   options=options, facts=row.facts(), use_instance=False, crop_size=recipe.data.crop_size,
                   aspect_ratio=recipe.data.aspect_ratio,
                   origin=f"spadekit import oasis {dataset} {models.resolve()} --iter {prefix}")
    context = GeneratorContext(LabelSpace.from_facts(info.facts, False), info.crop_size, info.aspect_ratio)
    order = parsed.oasis_order(context.space)
    z_dim = options["z_dim"] if options["noise_3d"] else 0

    checkpoint: dict[str, Any] = {"step": 0}
    files = []
    generator = info.build_generator()
    expected = generator.state_dict()
    for role in ("G", "EMA"):
        if role not in states:
            continue
        where, what = str(paths[role]), f"spadekit's OASIS generator for {dataset}"
        state, found = map_state(states[role], expected, where, what)
        notes += found
        load_state(generator, permute_generator(state, order, z_dim), where)
        checkpoint[ROLES[role]] = {k: v.clone() for k, v in generator.state_dict().items()}
        files.append(ImportedFile(ROLES[role], paths[role].resolve(), sha256_file(paths[role]), len(states[role]),
                                  count_parameters(generator)))
    if "G" not in states:
        checkpoint[GENERATOR] = checkpoint[EMA]
        notes.append(f"no {prefix}_G.pth: the generator is the EMA generator (fine-tuning starts from it)")
    if "EMA" not in states:
        checkpoint[EMA] = checkpoint[GENERATOR]
        notes.append(f"no {prefix}_EMA.pth (trained with --no_EMA?): synth and bench use the raw generator")
    if "D" in states:
        discriminator = spec.method(parsed, context=context, recipe=recipe).build_discriminator()
        where = str(paths["D"])
        state, found = map_state(states["D"], discriminator.state_dict(), where, f"spadekit's OASIS discriminator "
                                 f"for {dataset}")
        notes += found
        load_state(discriminator, permute_discriminator(state, order), where)
        checkpoint[DISCRIMINATOR] = discriminator.state_dict()
        files.append(ImportedFile(DISCRIMINATOR, paths["D"].resolve(), sha256_file(paths["D"]), len(states["D"]),
                                  count_parameters(discriminator)))
    else:
        notes.append(f"no {prefix}_D.pth: fine-tuning starts the discriminator from scratch")
    sources = {f.role: {"path": str(f.path), "sha256": f.sha256} for f in files}
    if opt.path is not None:
        sources["options"] = {"path": str(opt.path.resolve()), "sha256": sha256_file(opt.path)}
    checkpoint["imported_from"] = sources
    write_run(out, info, _recipe_text(dataset, options, opt, out), checkpoint)
    return OasisImportSummary(out, dataset, prefix, _iteration_number(experiment, prefix), options, files, notes,
                              image_size=context.image_size, opt_file=None if opt.path is None else opt.path.resolve())


def _training_options(dataset: str, opt: _Opt) -> dict[str, Any]:
    """The plugin's training options: the dataset's (the shipped recipe's), then opt.txt's."""
    options = dict(load_recipe(_shipped_recipe(dataset)).model.options)
    options = {key: options[key] for key in ("lambda_labelmix", "dontcare_class")}
    if "lambda_labelmix" in opt:
        options["lambda_labelmix"] = opt.number("lambda_labelmix")
    if "no_labelmix" in opt:
        options["labelmix"] = not opt.flag("no_labelmix")
    if "no_balancing_inloss" in opt:
        options["class_balancing"] = not opt.flag("no_balancing_inloss")
    return options


def _shipped_recipe(dataset: str) -> Path:
    path = Path(str(resources.files("spadekit_recipes") / f"oasis_{dataset}.toml"))
    if not path.is_file():
        raise SpadekitError(f"The recipe {path} is missing; reinstall spadekit (pip install -e .).")
    return path


def _recipe_text(dataset: str, options: dict[str, Any], opt: _Opt, run_dir: Path) -> str:
    """The shipped recipe of the dataset with the imported model's options, the training settings of opt.txt
    (when there) and `train.init_from` = the run directory."""
    overrides: dict[str, Any] = {f"model.{key}": value for key, value in options.items()}
    overrides["train.init_from"] = str(Path(run_dir).resolve())
    settings = {"batch_size": "data.batch_size", "num_epochs": "train.epochs", "lr_g": "optim.lr_G",
                "lr_d": "optim.lr_D", "beta1": "optim.beta1", "beta2": "optim.beta2", "EMA_decay": "train.ema_decay"}
    for name, key in settings.items():
        if name in opt:
            overrides[key] = opt.number(name, int if name in ("batch_size", "num_epochs") else float)
    if opt.flag("no_EMA"):
        overrides["train.ema_decay"] = 0.0
    if opt.flag("no_flip"):
        overrides["data.flip"] = False
    if opt.flag("add_vgg_loss"):
        overrides["loss.lambda_vgg"] = opt.number("lambda_vgg") if "lambda_vgg" in opt else 10.0
    also = " and those of the checkpoint's opt.txt" if opt.path else ""
    header = (f"# Recipe for fine-tuning the OASIS {dataset} model imported into {run_dir} (train.init_from).\n"
              "# Set data.shards to your prepared dataset and train into a new run directory; the settings are\n"
              f"# recipes/oasis_{dataset}.toml's{also}.\n\n")
    return header + load_recipe(_shipped_recipe(dataset), overrides).resolved_toml()
