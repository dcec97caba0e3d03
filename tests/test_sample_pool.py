"""Stopping prepare's worker pool never hangs: `stop_pool` gives up a terminate() that waits on a lock a killed
worker held (multiprocessing.Pool can), and kills what is still alive."""

from __future__ import annotations

import threading
import time

from spadekit.data.sample_pool import stop_pool


class _Worker:
    def __init__(self):
        self.killed = False

    def is_alive(self) -> bool:
        return not self.killed

    def kill(self) -> None:
        self.killed = True


class _StuckPool:
    """terminate() blocks for good, as Pool's does when its task handler waits on a dead worker's lock."""

    def __init__(self):
        self._pool = [_Worker(), _Worker()]
        self.forever = threading.Event()

    def terminate(self) -> None:
        self.forever.wait()

    def join(self) -> None:
        pass


def test_a_stuck_terminate_is_abandoned_and_the_workers_killed():
    pool = _StuckPool()
    start = time.monotonic()
    stop_pool(pool, timeout=0.2)
    assert time.monotonic() - start < 2 and all(worker.killed for worker in pool._pool)
    pool.forever.set()
