"""`spadekit perf --json`: the figures and keys that scripts read (timings themselves are never asserted)."""

from __future__ import annotations

import json

import pytest

from spadekit.device import cpu_has_fast_bf16

KEYS = ("generator_forward_s_fp32", "generator_forward_s_bf16", "train_step_s_fp32", "train_step_s_bf16",
        "matmul_peak_gflops_fp32", "matmul_peak_gflops_bf16", "generator_achieved_gflops_fp32",
        "loader_samples_per_s_workers0", "loader_samples_per_s_workers2", "prepare_images_per_s", "device")


def test_perf_json_has_every_figure(tmp_path, cli):
    out = tmp_path / "perf.json"
    proc = cli("perf", "--size", "64", "--repeats", "1", "--json", str(out))
    result = json.loads(out.read_text())
    assert set(KEYS) <= set(result) and result["size"] == 64 and result["device"].startswith("cpu")
    assert result["generator_gflop"] * 16 == pytest.approx(382.28, rel=0.01)  # 1/16 of the 256x256 FLOPs
    for key in KEYS[:-1]:
        if key.endswith("bf16") and not cpu_has_fast_bf16():
            assert result[key] is None and "no native bf16" in result["bf16_skipped"]
        else:
            assert result[key] > 0, key
    assert "matmul peak GFLOP/s" in proc.stdout and "generator forward" in proc.stdout
