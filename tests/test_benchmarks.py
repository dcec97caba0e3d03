"""The benchmark scripts that a GPU session runs stay runnable: each is exercised here on the CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from spadekit.train.distributed import _free_port

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cuda_paths_trains_in_a_one_rank_group_on_the_cpu(toy_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("MASTER_PORT", str(_free_port("127.0.0.1")))
    cuda_paths = _script("cuda_paths")
    monkeypatch.setitem(cuda_paths.TINY, "data.num_workers", 0)
    lines = cuda_paths.run(toy_shards, tmp_path, torch.device("cpu"))
    assert lines == ["fp32 (gloo): DDP trained 4 steps; SyncBatchNorm forwards 0; fp16 loss scale None"]


def test_a_training_step_runs_in_ddp_for_the_overhead_measure(monkeypatch):
    """benchmarks/train_step.py --ddp: perf's training step with G's step and D in DDP, one rank over gloo."""
    import torch.distributed as dist

    from spadekit.nn.semantics import LabelSpace
    from spadekit.perf import training_step

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port("127.0.0.1")))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        step = training_step("fp32", torch.device("cpu"), LabelSpace(8, False, True), 64, ddp=True)
        step()
    finally:
        dist.destroy_process_group()


def test_ddp_scaling_measures_one_and_two_ranks_against_linear():
    """benchmarks/ddp_scaling.py's rows, on CPU processes over gloo: the figures' arithmetic, not their speed."""
    from spadekit.ddp_scaling import scaling
    from spadekit.nn.semantics import LabelSpace

    rows = scaling([1, 2], "fp32", 1, size=64, space=LabelSpace(8, False, True), repeats=1, warmup=0)
    assert [row["ranks"] for row in rows] == [1, 2] and rows[0]["efficiency"] == 1.0
    for row in rows:
        assert row["images_per_s"] == row["ranks"] / row["step_s"]
    assert rows[1]["efficiency"] == rows[1]["images_per_s"] / (2 * rows[0]["images_per_s"])


def test_the_profile_names_the_dense_share_of_a_step():
    profile_step = _script("profile_step")
    from spadekit.nn.semantics import LabelSpace
    from spadekit.perf import training_step

    step = training_step("fp32", torch.device("cpu"), LabelSpace(8, False, True), 64)
    table = profile_step.profile_table(step, torch.device("cpu"), steps=1, rows=10)
    assert "aten::convolution" in table and "dense operators (convolutions, matmuls):" in table


def test_the_gpu_session_script_parses():
    import subprocess

    subprocess.run(["bash", "-n", str(BENCHMARKS / "gpu_session.sh")], check=True)
