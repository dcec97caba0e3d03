"""Reading the official SPADE checkpoint files and mapping their keys onto spadekit's modules.

Only spectral norm changes a key: the official `X.weight_orig / weight_u / weight_v` become our
parametrization's `X.parametrizations.weight.original / .0._u / .0._v`; every other key is kept.
"""


from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from spadekit.errors import SpadekitError
from spadekit.imported_run import zero_missing_batch_counters
from spadekit.nn.layers import OFFICIAL_SPECTRAL_KEYS
from spadekit.run_info import few_keys
from spadekit.weights import load_weights_only

ROLES = {"G": "generator", "E": "encoder", "D": "discriminator"}  # official file suffix -> network
_SN = {suffix: "." + ours for suffix, ours in OFFICIAL_SPECTRAL_KEYS.items()}
_SN_ORIG, _SN_U, _SN_V = _SN["weight_orig"], _SN["weight_u"], _SN["weight_v"]


# ---------------------------------------------------------------------------------------------- files


def find_checkpoints(ckpt_dir: Path, which: str = "latest") -> dict[str, Path]:
    """`{which}_net_{G,E,D}.pth` in `ckpt_dir` by role letter; G must exist."""
    ckpt_dir = Path(ckpt_dir)
    generator = f"{which}_net_G.pth"
    if not ckpt_dir.is_dir():
        state = "is a file, not a folder" if ckpt_dir.exists() else "does not exist"
        raise SpadekitError(
            f"Checkpoint folder {ckpt_dir} {state}; give the folder that holds {generator} "
            "(e.g. checkpoints/coco_pretrained from the official checkpoints.tar.gz)."
        )
    paths = {role: ckpt_dir / f"{which}_net_{role}.pth" for role in ROLES}
    if not paths["G"].is_file():
        present = sorted(p.name for p in ckpt_dir.glob("*.pth"))
        held = f"it holds {', '.join(present)}" if present else "it holds no .pth files"
        epochs = sorted({name.removesuffix("_net_G.pth") for name in present if name.endswith("_net_G.pth")})
        hint = f"pass --which {' or '.join(epochs)}" if epochs else "give the folder of an official SPADE checkpoint"
        raise SpadekitError(f"{ckpt_dir} has no {generator} to import ({held}); {hint}.")
    return {role: path for role, path in paths.items() if path.is_file()}


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """An official state dict loaded onto the CPU (tensors only, no code), and whether a DataParallel
    `module.` prefix was stripped from its keys."""
    path = Path(path)
    state = load_weights_only(path, f"PyTorch state dict {path}", "download the official checkpoint again")
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise SpadekitError(
            f"{path} is not a state dict of tensors; the official code saves torch.save(net.state_dict()), "
            "so point to an official *_net_G.pth / _net_D.pth / _net_E.pth file."
        )
    if all(key.startswith("module.") for key in state):
        return {key.removeprefix("module."): value for key, value in state.items()}, True
    return dict(state), False


# ------------------------------------------------------------------------------------- key mapping


def official_key(key: str, prefix: str = "") -> str:
    """Our state-dict key -> the official one (for messages)."""
    key = key.removeprefix(prefix)
    for old, ours in _SN.items():
        if key.endswith(ours):
            return key[: -len(ours)] + "." + old
    return key


def convert_state(official: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str, what: str,
                  prefix: str = "") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map an official state dict onto `expected` (our module's state dict, keys under `prefix`).

    Every official key must land on one of ours and every one of ours must be filled, with equal shapes;
    otherwise a SpadekitError names the keys and `where`. Two gaps of old saves are filled (and reported
    in the returned notes): `weight_v` (torch < 1.0 did not store it; v = normalize(W^T u), rescaled to the
    normalized weight `weight` those versions stored) and BatchNorm's `num_batches_tracked` (torch < 0.4.1).
    """
    spectral = {key[: -len(_SN_ORIG)] for key in expected if key.endswith(_SN_ORIG)}
    mapped: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    legacy: dict[str, tuple[str, torch.Tensor]] = {}  # torch < 1.0 saved W / sigma as `X.weight`
    unknown: list[str] = []
    for key, value in official.items():
        module, _, leaf = (prefix + key).rpartition(".")
        if module in spectral and leaf in _SN:
            ours = module + _SN[leaf]
        elif module in spectral and leaf == "weight":
            legacy[module] = (key, value)
            continue
        else:
            ours = prefix + key
        if ours not in expected:
            unknown.append(key)
        mapped[ours], origin[ours] = value, key
    if unknown:
        raise SpadekitError(
            f"{where} has {len(unknown)} key(s) that {what} does not have: {few_keys(unknown)}; is it a checkpoint "
            "of another network, or trained with other options (e.g. --netG pix2pixhd)?"
        )
    for ours, value in mapped.items():
        _check_shape(origin[ours], value, expected[ours], where, what)

    notes = []
    solved = 0
    for module in sorted(spectral):
        v_key, w_key, u_key = module + _SN_V, module + _SN_ORIG, module + _SN_U
        if v_key in mapped or w_key not in mapped or u_key not in mapped:
            continue
        stored = legacy.pop(module, None)
        if stored is not None:
            _check_shape(stored[0], stored[1], expected[w_key], where, what)
        mapped[v_key] = solve_v(mapped[w_key], mapped[u_key], None if stored is None else stored[1])
        origin[v_key] = official_key(v_key, prefix)
        solved += 1
    if legacy:  # a `weight` beside a complete weight_orig/u/v: not an old save, just an unknown key
        keys = [key for key, _ in legacy.values()]
        raise SpadekitError(f"{where} has {len(keys)} key(s) that {what} does not have: {few_keys(keys)}; is it a "
                            "checkpoint of another network, or trained with other options?")
    if solved:
        notes.append(f"{where}: {solved} spectral-norm layers lack weight_v (a save of torch < 1.0); "
                     "v was computed from weight_orig and weight_u")
    counters = zero_missing_batch_counters(expected, mapped, where, cause=" (a save of torch < 0.4.1)")
    if counters:
        notes.append(counters)
    missing = [official_key(key, prefix) for key in expected if key not in mapped]
    if missing:
        raise SpadekitError(
            f"{where} lacks {len(missing)} key(s) that {what} needs: {few_keys(missing)}; is the file complete, "
            "and was it trained with the official options of this dataset?"
        )
    return mapped, notes


@torch.no_grad()
def solve_v(weight_orig: torch.Tensor, u: torch.Tensor, normalized: torch.Tensor | None = None) -> torch.Tensor:
    """The right singular-vector estimate v that torch < 1.0 did not save: one power-iteration half step,
    v = normalize(W^T u). When the save holds the normalized weight W / sigma it used at inference, v is
    rescaled so that u^T W v equals that sigma, which keeps the old model's output exactly."""
    w = weight_orig.double().flatten(1)
    u64 = u.double()
    v = F.normalize(w.t() @ u64, dim=0, eps=1e-12)
    if normalized is not None:
        n = normalized.double().flatten(1)
        sigma = (w * n).sum() / (n * n).sum().clamp_min(1e-30)  # least squares: weight_orig = sigma * W_normalized
        v = v * (sigma / torch.dot(u64, w @ v))
    return v.to(u.dtype)


def _check_shape(key: str, value: torch.Tensor, target: torch.Tensor, where: str, what: str) -> None:
    if tuple(value.shape) != tuple(target.shape):
        raise SpadekitError(
            f"{where}: {key} has shape {tuple(value.shape)} but {what} needs {tuple(target.shape)}; the checkpoint "
            "was trained with other options (label_nc, ngf, crop size) than this dataset's official ones."
        )
