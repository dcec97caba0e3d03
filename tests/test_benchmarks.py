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
