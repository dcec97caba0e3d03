"""FID and KID through torch-fidelity, with its Inception weights from a file and never from the network.

torch-fidelity's `inception-v3-compat` extractor is the TensorFlow FID Inception (pool3, 2048 features),
ported to PyTorch; its weights file is `weights-inception-2015-12-05-6726825d.pth`. We look for it where the
user says (`--fid-weights`, `[bench] fid_weights`), then in the torch hub cache, where torch-fidelity itself
keeps it. When it is nowhere, FID and KID are not computed and the reason names the file and the places.

torch-fidelity unpickles its weights file and its feature cache with `weights_only=False`, so a planted file
would run code. It therefore never sees a file a user or a cache names: we load the weights weights-only,
check that they fit its network, and hand it a copy we wrote ourselves from those tensors; and we keep its
cache off and cache the real set's features ourselves as .npz, read with `allow_pickle=False`, under a name
made of the real set's key and the weights' hash (`Protocol.fidelity_key`), so a real split is passed through
Inception once.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spadekit.bench.scores import FID, KID, KID_STD
from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_bytes, cache_dir, sha256_file
from spadekit.weights import read_state_dict

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
FEATURE_EXTRACTOR = "inception-v3-compat"
FEATURES = "2048"  # pool3: the layer FID and KID compare
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000  # torch-fidelity's default; fewer images use all of them in every subset


def backend() -> str:
    from torch_fidelity.version import __version__

    return f"torch-fidelity {__version__}, {FEATURE_EXTRACTOR}, pool3 2048-d"


def hub_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


@dataclass(frozen=True)
class InceptionWeights:
    """The weights file to use, or why there is none."""

    path: Path | None
    sha256: str | None
    missing: str | None  # the reason FID/KID are not computed


def find_weights(given: Path | None) -> InceptionWeights:
    """The user's file if given (it must exist), else the torch hub cache's, else a reason naming both.

    A file found is checked here, before bench writes anything: it must load weights-only and fit the network.
    """
    if given is not None:
        given = Path(given).expanduser()
        if not given.is_file():
            raise SpadekitError(f"Inception weights {given} (--fid-weights / [bench] fid_weights) do not exist; "
                                f"give the path of {WEIGHTS_FILE} ({WEIGHTS_URL}).")
        load_inception(given, torch.device("cpu"))
        return InceptionWeights(given, sha256_file(given), None)
    cached = hub_weights_path()
    if cached.is_file():
        load_inception(cached, torch.device("cpu"))
        return InceptionWeights(cached, sha256_file(cached), None)
    reason = (f"Inception weights {WEIGHTS_FILE} not found at {cached}; download {WEIGHTS_URL} there "
              "or pass --fid-weights PATH")
    return InceptionWeights(None, None, reason)


def load_inception(weights: Path, device: torch.device):
    """torch-fidelity's Inception with the tensors of `weights`, which is never handed to torch-fidelity.

    torch-fidelity loads its weights file with `weights_only=False`; it gets a copy that we wrote, in a private
    temporary folder, from the tensors we loaded weights-only, and its strict load checks keys and shapes.
    """
    from torch_fidelity.utils import create_feature_extractor

    state = _read(weights)
    with tempfile.TemporaryDirectory(prefix="spadekit-inception-") as folder:
        copy = Path(folder) / WEIGHTS_FILE
        torch.save(state, copy)
        try:
            network = create_feature_extractor(FEATURE_EXTRACTOR, [FEATURES], cuda=False, verbose=False,
                                               feature_extractor_weights_path=str(copy))
        except RuntimeError as err:  # missing, unexpected or mis-shaped keys
            detail = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
            raise SpadekitError(f"Inception weights {weights} do not fit torch-fidelity's {FEATURE_EXTRACTOR} "
                                f"network ({detail[:160]}); give the path of {WEIGHTS_FILE} ({WEIGHTS_URL}).") from None
    return network.to(device)


def _read(weights: Path) -> dict[str, torch.Tensor]:
    try:
        return read_state_dict(weights)
    except SpadekitError:  # its reason is torch's paragraph, which suggests loading with code execution allowed
        raise SpadekitError(f"Inception weights {weights} are not a state dict of tensors that loads without running "
                            f"code (the file is damaged or is another one); give the path of {WEIGHTS_FILE} "
                            f"({WEIGHTS_URL}).") from None


def kid_subset_size(num_images: int) -> int:
    return min(KID_SUBSET_SIZE, num_images)


def fid_kid(generated: Path, real: Path, num_images: int, weights: Path, real_cache_name: str,
            device: torch.device, batch_size: int = 32) -> dict[str, float]:
    """{"fid", "kid", "kid_std"} of the `num_images` PNG images in folder `generated` against those in `real`.

    The numbers are torch-fidelity's `calculate_metrics(fid=True, kid=True)`, computed from the same features
    by its own functions; only the feature cache is ours.
    """
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    network = load_inception(weights, device)
    fake = _features(generated, network, device, batch_size)
    cache = cache_dir() / "fidelity" / f"{real_cache_name}.npz"
    reference = read_features(cache)
    if reference is None:
        reference = _features(real, network, device, batch_size)
        write_features(cache, reference)
    fid = fid_statistics_to_metric(fid_features_to_statistics(fake), fid_features_to_statistics(reference), False)
    kid = kid_features_to_metric(fake, reference, kid_subsets=KID_SUBSETS,
                                 kid_subset_size=kid_subset_size(num_images), verbose=False)
    return {
        FID: fid["frechet_inception_distance"],
        KID: kid["kernel_inception_distance_mean"],
        KID_STD: kid["kernel_inception_distance_std"],
    }


def _features(folder: Path, network, device: torch.device, batch_size: int) -> torch.Tensor:
    """The pool3 features of the images in `folder`, found and decoded as calculate_metrics does, uncached."""
    from torch_fidelity.utils import extract_featuresdict_from_input_id

    features = extract_featuresdict_from_input_id(1, network, input1=str(folder), batch_size=batch_size,
                                                  cuda=device.type == "cuda", save_cpu_ram=True, verbose=False)
    return features[FEATURES]


def read_features(path: Path) -> torch.Tensor | None:
    """Cached features, or None when absent or unusable (then they are computed again): an .npz read with
    `allow_pickle=False` is numbers only, whatever was planted there."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            features = saved["features"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if features.dtype != np.float32 or features.ndim != 2 or features.shape[1] != int(FEATURES) or len(features) < 2:
        return None
    return torch.from_numpy(features)


def write_features(path: Path, features: torch.Tensor) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, features=features.numpy())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
