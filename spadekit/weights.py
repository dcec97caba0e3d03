"""Published weight files for plugins: where to find them offline, and loading them without running code.

Plugins that wrap a published network (the paper's evaluation segmenters, the official generators) load the
file that its repository released, as it is. `find_weights` looks where a user would put it: the path given
(a file, or a folder holding the file), then the torch hub cache (`$TORCH_HOME/hub/checkpoints`, where
`torch.hub.load_state_dict_from_url` saves downloads). Nothing is downloaded, and random weights are never
substituted: a missing file is one sentence naming it, where it was looked for and where it is published.
`load_weights_only` is spadekit's one `torch.load`: `weights_only=True` (tensors and plain values, no code), a
failure one sentence. `read_state_dict` reads a state dict through it and `load_into` loads strictly, naming any
missing, unexpected or mis-shaped key.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from spadekit.errors import SpadekitError


class MissingWeightsError(SpadekitError):
    """A published weights file that is not on this machine (a caller may go on without what it computes)."""


def hub_checkpoints_dir() -> Path:
    """The torch hub cache's checkpoint folder (`$TORCH_HOME/hub/checkpoints`)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


CHECKPOINT_OPTIONS = "--checkpoint, --segmenter-ckpt or --set segmenter_ckpt=PATH"


def find_weights(given: Path | str | None, filename: str, url: str, what: str,
                 option: str = CHECKPOINT_OPTIONS) -> Path:
    """The published file `filename` of `what`: `given` itself, `given/filename` when `given` is a folder, or
    the torch hub cache's copy when nothing is given."""
    if given is not None:
        path = Path(given).expanduser()
        if path.is_dir():
            path = path / filename
        if path.is_file():
            return path
        raise MissingWeightsError(
            f"The weights of {what} are not at {path}; download {filename} from {url} and pass its path with {option}."
        )
    cached = hub_checkpoints_dir() / filename
    if cached.is_file():
        return cached
    raise MissingWeightsError(
        f"The weights of {what} ({filename}) were not given and are not in the torch hub cache ({cached}); "
        f"download them from {url} and give the path ({option}) or put the file in that folder."
    )


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """A state dict of tensors loaded onto the CPU with `weights_only=True`; a DataParallel `module.` prefix
    is stripped."""
    path = Path(path)
    state = load_weights_only(path, f"PyTorch state dict {path}", "download it again")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint wrapping the weights
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise SpadekitError(f"{path} is not a state dict of tensors; pass the published weights file itself.")
    if all(key.startswith("module.") for key in state):
        return {key.removeprefix("module."): value for key, value in state.items()}
    return dict(state)


def load_weights_only(path: Path | str, what: str, fix: str) -> object:
    """`torch.load(path)` onto the CPU unpickling only tensors and plain values (never code); a file that cannot
    be read is the sentence "`what` cannot be read (why); `fix`." """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise SpadekitError(f"{what} cannot be read ({load_failure(exc)}); {fix}.") from exc


def load_failure(exc: Exception) -> str:
    """Why torch.load failed, in a few words. Its weights-only messages run to paragraphs that advise loading
    with code execution allowed, which spadekit never does; their last part says what was refused."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    _, found, detail = text.partition("WeightsUnpickler error:")
    if isinstance(exc, pickle.UnpicklingError) and found:
        lines = detail.strip().splitlines()
        return "refused by the weights-only reader: " + (lines[0].split(". ")[0] if lines else "?")
    return text.splitlines()[0] if text else type(exc).__name__


def load_into(module: nn.Module, state: dict[str, torch.Tensor], path: Path | str,
              ignore_suffixes: Iterable[str] = ("num_batches_tracked",)) -> None:
    """Load `state` into `module` strictly, except keys ending in one of `ignore_suffixes` (absent or extra
    alike); an unknown, missing or mis-shaped key is one sentence naming it and `path`."""
    ignore = tuple(ignore_suffixes)
    expected = {k: v for k, v in module.state_dict().items() if not k.endswith(ignore)}
    given = {k: v for k, v in state.items() if not k.endswith(ignore)}
    missing = [k for k in expected if k not in given]
    unknown = [k for k in given if k not in expected]
    shaped = [f"{k} {tuple(given[k].shape)} (expected {tuple(v.shape)})"
              for k, v in expected.items() if k in given and given[k].shape != v.shape]
    for problem, keys in (("lacks", missing), ("has unknown keys", unknown), ("has mis-shaped keys", shaped)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise SpadekitError(f"{path} {problem} {', '.join(keys[:3])}{more}; it is not the published file "
                                f"this network loads.")
    module.load_state_dict(given, strict=False)
