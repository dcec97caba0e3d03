"""FID and KID through torch-fidelity, with its Inception weights from a file and never from the network.

torch-fidelity's `inception-v3-compat` extractor is the TensorFlow FID Inception (pool3, 2048 features),
ported to PyTorch; its weights file is `weights-inception-2015-12-05-6726825d.pth`. We look for it where the
user says (`--fid-weights`, `[bench] fid_weights`), then in the torch hub cache, where torch-fidelity itself
keeps it. When it is nowhere, FID and KID are not computed and the reason names the file and the places.

The features of the real set are cached by torch-fidelity under a name made of the real set's key and the
weights' hash (`Protocol.fidelity_key`), so a real split is passed through Inception once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from spadekit.errors import SpadekitError
from spadekit.fileio import cache_dir, sha256_file

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
FEATURE_EXTRACTOR = "inception-v3-compat"
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
    """The user's file if given (it must exist), else the torch hub cache's, else a reason naming both."""
    if given is not None:
        given = Path(given).expanduser()
        if not given.is_file():
            raise SpadekitError(f"Inception weights {given} (--fid-weights / [bench] fid_weights) do not exist; "
                                f"give the path of {WEIGHTS_FILE} ({WEIGHTS_URL}).")
        return InceptionWeights(given, sha256_file(given), None)
    cached = hub_weights_path()
    if cached.is_file():
        return InceptionWeights(cached, sha256_file(cached), None)
    reason = (f"Inception weights {WEIGHTS_FILE} not found at {cached}; download {WEIGHTS_URL} there "
              "or pass --fid-weights PATH")
    return InceptionWeights(None, None, reason)


def kid_subset_size(num_images: int) -> int:
    return min(KID_SUBSET_SIZE, num_images)


def fid_kid(generated: Path, real: Path, num_images: int, weights: Path, real_cache_name: str,
            device: torch.device, batch_size: int = 32) -> dict[str, float]:
    """{"fid", "kid", "kid_std"} of the `num_images` PNG images in folder `generated` against those in `real`."""
    import torch_fidelity

    metrics = torch_fidelity.calculate_metrics(
        input1=str(generated),
        input2=str(real),
        input2_cache_name=real_cache_name,
        cache_root=str(cache_dir() / "fidelity"),
        cuda=device.type == "cuda",
        batch_size=batch_size,
        fid=True,
        kid=True,
        kid_subsets=KID_SUBSETS,
        kid_subset_size=kid_subset_size(num_images),
        feature_extractor=FEATURE_EXTRACTOR,
        feature_extractor_weights_path=str(weights),
        save_cpu_ram=True,  # no DataLoader worker processes
        verbose=False,
    )
    return {
        "fid": metrics["frechet_inception_distance"],
        "kid": metrics["kernel_inception_distance_mean"],
        "kid_std": metrics["kernel_inception_distance_std"],
    }
