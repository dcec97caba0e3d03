"""torch.distributed setup that runs the same under torchrun, under our own launcher, or in a single process.

`launch` starts workers with the spawn method, so the worker must be a module-level function and its argument
picklable. Every worker receives a DistEnv saying which rank it is and which device it owns.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_text

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
MAX_PROCESSES_PER_CORE = 4  # CPU processes beyond this many per core are refused: a typo, not a plan
Worker = Callable[["DistEnv", Any], None]


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


@dataclass(frozen=True)
class _Plan:
    """What each spawned process needs to join the group (picklable, so it travels to the children)."""

    gpus: int
    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int
    error_dir: str


def launch(
    worker: Worker,
    arg: Any,
    gpus: int,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str = "127.0.0.1",
    master_port: int | None = None,
) -> None:
    """Run `worker(env, arg)` on every rank: joining torchrun's group, in this process, or in `gpus` spawned ones."""
    if launched_by_torchrun():
        _run_in_group(worker, arg)
    elif nnodes == 1 and gpus <= 1:
        worker(DistEnv(device=_single_device(gpus)), arg)
    else:
        _check_spawn(gpus, nnodes, node_rank, master_port)
        _spawn(worker, arg, gpus, nnodes, node_rank, master_addr, master_port or _free_port(master_addr))


def plan_description(gpus: int, nnodes: int = 1) -> str:
    """One line for the user saying where the workers will run, e.g. '2 CPU processes (gloo): no CUDA device found'."""
    if launched_by_torchrun():
        return f"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}, started by torchrun"
    if nnodes == 1 and gpus <= 1:
        device = _single_device(gpus)
        reason = ": no CUDA device found" if gpus == 1 and device.type == "cpu" else ""
        return f"1 process on {device}{reason}"
    nodes = f" on each of {nnodes} nodes" if nnodes > 1 else ""
    if torch.cuda.is_available():
        return f"{gpus} GPU processes (nccl){nodes}"
    return f"{gpus} CPU processes (gloo){nodes}: no CUDA device found"


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask, as under taskset or a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cpu_process_warning(gpus: int, nnodes: int = 1) -> str | None:
    """A warning when `--gpus` CPU processes will share fewer cores; a SpadekitError when they are absurdly many.

    Without CUDA `--gpus N` starts N gloo processes per node; more than the cores slows every step down.
    """
    if launched_by_torchrun() or torch.cuda.is_available() or (nnodes == 1 and gpus <= 1):
        return None
    cores = cpu_cores()
    if gpus > MAX_PROCESSES_PER_CORE * cores:
        raise SpadekitError(f"--gpus {gpus} would start {gpus} CPU training processes (no CUDA device found) on "
                            f"this machine's {cores} CPU cores; pass --gpus {cores} or fewer.")
    if gpus > cores:
        return (f"--gpus {gpus} starts {gpus} CPU processes (no CUDA device found) on {cores} CPU cores: they will "
                f"compete for the cores and train slower than --gpus {cores}.")
    return None


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in _TORCHRUN_VARS)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier(device_ids=[env.device.index] if env.backend == "nccl" else None)


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    """Rank 0's `obj` on every rank (it must pickle); `obj` itself when not distributed."""
    if not env.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0, device=env.device)
    return holder[0]


def all_reduce_mean(tensor_dict: dict[str, torch.Tensor], env: DistEnv) -> dict[str, float]:
    """The mean over ranks of each scalar, as plain floats ready for logging; one collective for all of them."""
    names = sorted(tensor_dict)
    if not names:
        return {}
    scalars = [torch.as_tensor(tensor_dict[n]).detach().to(env.device, torch.float32).reshape(()) for n in names]
    values = torch.stack(scalars)
    if env.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= env.world_size
    return dict(zip(names, values.tolist(), strict=True))


def _single_device(gpus: int) -> torch.device:
    return torch.device("cuda:0" if gpus == 1 and torch.cuda.is_available() else "cpu")


def _check_spawn(gpus: int, nnodes: int, node_rank: int, master_port: int | None) -> None:
    if gpus < 1:
        raise SpadekitError(f"--gpus {gpus} with --nnodes {nnodes} starts no worker: pass --gpus 1 or more.")
    if not 0 <= node_rank < nnodes:
        raise SpadekitError(f"--node-rank {node_rank} is outside 0..{nnodes - 1}: give each node its own rank.")
    if nnodes > 1 and master_port is None:
        raise SpadekitError("Training on several nodes needs a rendezvous port: pass the same --master-port on all.")
    cpu_process_warning(gpus, nnodes)  # refuses absurd counts; the command line prints the warning
    if torch.cuda.is_available() and gpus > torch.cuda.device_count():
        raise SpadekitError(
            f"--gpus {gpus} asks for more GPUs than the {torch.cuda.device_count()} this machine has: "
            f"pass --gpus {torch.cuda.device_count()} or fewer."
        )


def _free_port(host: str) -> int:
    """A port the OS says is free now (single node only: other nodes cannot learn it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _spawn(worker: Worker, arg: Any, gpus: int, nnodes: int, node_rank: int, addr: str, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="spadekit-launch-") as error_dir:
        plan = _Plan(gpus, nnodes, node_rank, addr, port, error_dir)
        try:
            mp.start_processes(_spawned, args=(worker, arg, plan), nprocs=gpus, start_method="spawn")
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            _reraise(exc, plan)


def _spawned(local_rank: int, worker: Worker, arg: Any, plan: _Plan) -> None:
    """Entry point of a spawned process: publish the torchrun variables, join the group, run the worker."""
    rank = plan.node_rank * plan.gpus + local_rank
    os.environ.update(
        MASTER_ADDR=plan.master_addr,
        MASTER_PORT=str(plan.master_port),
        RANK=str(rank),
        WORLD_SIZE=str(plan.nnodes * plan.gpus),
        LOCAL_RANK=str(local_rank),
        LOCAL_WORLD_SIZE=str(plan.gpus),
    )
    _run_in_group(partial(_reporting, worker, Path(plan.error_dir)), arg)


def _reporting(worker: Worker, error_dir: Path, env: DistEnv, arg: Any) -> None:
    """Run the worker; on failure, record it while the group still stands, before the other ranks see it break."""
    try:
        worker(env, arg)
    except Exception as exc:
        _record_failure(error_dir, env.rank, exc)
        raise


def _record_failure(error_dir: Path, rank: int, exc: Exception) -> None:
    """Leave the parent a timestamped account, so it can tell the first failure from the other ranks' echoes."""
    user = isinstance(exc, SpadekitError)
    record = {"rank": rank, "time": time.monotonic_ns(), "user": user}
    record["message"] = str(exc) if user else traceback.format_exc()
    atomic_write_text(error_dir / f"rank{rank}.json", json.dumps(record))


def _reraise(exc: Exception, plan: _Plan) -> None:
    """A user error in any rank surfaces as that SpadekitError; otherwise the first failure, with rank and traceback."""
    records = [json.loads(p.read_text()) for p in Path(plan.error_dir).glob("rank*.json")]
    records.sort(key=lambda r: (not r["user"], r["time"]))
    if records and records[0]["user"]:
        raise SpadekitError(records[0]["message"]) from None
    if records:
        raise RuntimeError(f"Training worker rank {records[0]['rank']} failed:\n{records[0]['message']}") from None
    rank = plan.node_rank * plan.gpus + exc.error_index  # killed before it could say why (a signal, say)
    raise RuntimeError(f"Training worker rank {rank} failed: {str(exc).strip()}") from None


def _run_in_group(worker: Worker, arg: Any) -> None:
    """Join the process group the environment describes, run the worker, and leave the group whatever happens."""
    env = _init_from_environment()
    try:
        worker(env, arg)
        barrier(env)  # leave together: a rank tearing gloo down while a peer still talks can abort the peer
    finally:
        dist.destroy_process_group()


def _init_from_environment() -> DistEnv:
    rank, world_size, local_rank = (int(os.environ[name]) for name in _TORCHRUN_VARS)
    if torch.cuda.is_available():
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
        _share_cpu_threads()
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    return DistEnv(rank, local_rank, world_size, device, backend)


def _share_cpu_threads() -> None:
    """CPU workers on one machine split its cores, as torchrun does, instead of each claiming all of them."""
    if "OMP_NUM_THREADS" not in os.environ:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, cpu_cores() // local_world))
