"""How many worker processes a command may start: never more than the CPUs this process may run on.

Each prepare worker is a spawned interpreter that imports the dataset plugin (tens to hundreds of MB), and
each DataLoader worker a forked copy of the trainer; asked for far more than the machine has, they only
compete for the same cores until memory runs out (`prepare --workers 100000` held 130 processes and 11.9 GB
after 25 s). A request above the CPU count is reduced with a warning; a number no machine runs is refused.
Every `--workers` option and the data loader share this one rule.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

from spadekit.errors import SpadekitError

ABSURD = 1024  # a request above this (and above the CPU count) is a typo, not a plan


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask (taskset, cgroups cpusets) where the OS has one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def cap_workers(requested: int, option: str = "--workers", warn: Callable[[str], None] | None = None) -> int:
    """`requested` worker processes, reduced to the available CPUs (saying so through `warn`, a Python
    warning by default); a negative or absurd count is a user error naming `option`."""
    cpus = available_cpus()
    if requested < 0 or requested > max(ABSURD, cpus):
        raise SpadekitError(
            f"{option} {requested} is not a process count this machine can run ({cpus} CPUs available); "
            f"use at most {cpus}."
        )
    if requested <= cpus:
        return requested
    message = f"{option} {requested} is more than the {cpus} CPUs available to this process; using {cpus}."
    if warn is None:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    else:
        warn(message)
    return cpus
