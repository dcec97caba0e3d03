"""`spadekit perf --json`: the figures and keys that scripts read (timings themselves are never asserted)."""

from __future__ import annotations

import json

import pytest

from spadekit.device import cpu_has_fast_bf16

KEYS = ("generator_forward_s_fp32", "generator_forward_s_bf16", "train_step_s_fp32", "train_step_s_bf16",
        "matmul_peak_gflops_fp32", "matmul_peak_gflops_bf16", "generator_achieved_gflops_fp32",
        "loader_samples_per_s_workers0", "loader_samples_per_s_workers2", "prepare_images_per_s",
        "official_forward_s_fp32", "generator_forward_vs_official_fp32", "generator_forward_vs_official_bf16",
        "generator_forward_vs_official_bf16_blocky", "device")


def test_perf_json_has_every_figure(tmp_path, cli, monkeypatch):
    import torch

    # --compile's figures with torch.compile itself left out (minutes on a CPU): the timing and keys around it
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: None)
    out = tmp_path / "perf.json"
    proc = cli("perf", "--size", "64", "--repeats", "1", "--batch", "2", "--compile", "--json", str(out))
    result = json.loads(out.read_text())
    assert set(KEYS) <= set(result) and result["size"] == 64 and result["device"].startswith("cpu")
    assert result["generator_gflop"] * 16 == pytest.approx(382.28, rel=0.01)  # 1/16 of the 256x256 FLOPs
    for key in KEYS[:-1]:
        if key.endswith("bf16") and not cpu_has_fast_bf16():
            assert result[key] is None and "no native bf16" in result["bf16_skipped"]
        else:
            assert result[key] > 0, key
    assert "matmul peak GFLOP/s" in proc.stdout and "generator forward" in proc.stdout
    assert result["generator_forward_vs_official_fp32"] == pytest.approx(
        result["generator_forward_s_fp32"] / result["official_forward_s_fp32"])
    # the training step's rates, at batch 1 and at --batch, read against the measured matmul peak on a CPU
    assert result["train_batch"] == 2 and result["bf16_spec_peak_tflops"] is None
    assert result["train_step_gflop"] == pytest.approx(100.64, rel=0.01)  # the plain step's FLOPs at 64x64
    for suffix, batch in (("", 1), ("_batch", 2)):
        seconds = result[f"train_step_s_fp32{suffix}"]
        assert result[f"train_step_images_per_s_fp32{suffix}"] == pytest.approx(batch / seconds)
        tflops = result["train_step_gflop"] * batch / seconds / 1e3
        assert result[f"train_step_achieved_tflops_fp32{suffix}"] == pytest.approx(tflops)
        assert result[f"train_step_peak_fraction_fp32{suffix}"] == pytest.approx(
            tflops / (result["matmul_peak_gflops_fp32"] / 1e3))
    assert "nominal GFLOP per image" in proc.stdout
    # --compile: the compiled forward, and the step at --batch with train.compile and train.channels_last
    assert result["compiled"] is True and "compiled forward" in proc.stdout
    assert result["generator_forward_s_fp32_compiled"] > 0 and result["generator_compile_s_fp32"] >= 0
    seconds = result["train_step_s_fp32_compiled"]
    assert result["train_step_compile_s_fp32"] >= 0
    assert result["train_step_images_per_s_fp32_compiled"] == pytest.approx(2 / seconds)


def test_official_forward_is_the_plain_generators_computation():
    """perf's bar computes what spadekit's plain (training-time) generator computes in eval mode, which the
    nvlabs import tests hold to the official code."""
    import torch

    from spadekit.generator import GeneratorContext, build_generator
    from spadekit.nn.semantics import LabelSpace
    from spadekit.nvlabs.official_forward import official_forward
    from spadekit.perf import scene_semantics

    space = LabelSpace(30, dontcare=True, use_instance=True)
    for options in ({"ngf": 8}, {"ngf": 8, "num_upsampling_layers": "more"}):
        torch.manual_seed(0)
        generator = build_generator("spade", options, GeneratorContext(space, 64)).eval()
        semantics = scene_semantics(space, 2, 64)
        with torch.no_grad():
            torch.testing.assert_close(official_forward(generator, semantics), generator(semantics))


def test_the_training_step_of_a_model_with_its_own_method_uses_it(monkeypatch):
    """`perf --model oasis` times OASIS's step: its segmentation discriminator and losses, not the paper's."""
    import torch

    from spadekit.nn.semantics import LabelSpace
    from spadekit.perf import training_step
    from spadekit.train import build

    methods = []
    original = build.training_method
    monkeypatch.setattr(build, "training_method", lambda *a: methods.append(original(*a)) or methods[-1])
    training_step("fp32", torch.device("cpu"), LabelSpace(8, False, True), 64, model="oasis")()
    assert [type(m).__name__ for m in methods] == ["OasisMethod"]
