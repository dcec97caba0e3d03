"""Devices and precisions: which device a command runs on, which precisions it may use there, and autocast.

Training, inference, bench, segmenters and perf share these rules: fp16 needs a CUDA GPU (fp16 on a CPU is
slow and unscaled); bf16 on a CPU only where oneDNN runs it natively (AVX512-BF16 or AMX), since emulated
bf16 is hundreds of times slower; "auto" is the fastest native precision of the device.
"""

from __future__ import annotations

import contextlib

import torch

from spadekit.errors import SpadekitError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(device: str | None) -> torch.device:
    """The --device flag's torch.device: as given, else cuda when a GPU is available, else cpu."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX), which makes bf16 autocast pay off."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def fast_precision(device: torch.device) -> str:
    """The fastest precision this device runs natively: bf16, fp16 (GPUs without bf16) or fp32."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" as `fast_precision`, any other known precision as given; an unknown one is a user error."""
    if precision not in PRECISIONS:
        raise SpadekitError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}.")
    return fast_precision(device) if precision == "auto" else precision


def check_precision(precision: str, device: torch.device, option: str = "train.precision") -> None:
    """Refuse precisions the device would run slowly or unsafely, with the reason."""
    if precision == "fp16" and device.type != "cuda":
        raise SpadekitError(f"{option} fp16 needs a CUDA GPU (fp16 on a CPU is slow and unscaled); "
                            "use bf16 or fp32 on the CPU.")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        raise SpadekitError(f"{option} bf16 on this CPU would run in software emulation (it has no "
                            "AVX512-BF16 or AMX; emulated bf16 is hundreds of times slower than fp32); use fp32.")


def autocast(precision: str, device: torch.device):
    """bf16/fp16 autocast around forward passes; a no-op in fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])
