"""Reading source samples for `spadekit prepare`: in order, in worker processes, checked and resized."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from spadekit import registry
from spadekit.data.manifest import DatasetFacts
from spadekit.data.sample import Sample, SkipSample
from spadekit.data.shards import shard_name
from spadekit.errors import SpadekitError


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` in a split, and the keys of the samples it holds."""

    split: str
    index: int
    count: int
    keys: list[str]

    @property
    def file(self) -> str:
        return shard_name(self.split, self.index, self.count)


class SampleLoader:
    """Loads (and resizes) samples in order, in worker processes when workers > 1."""

    def __init__(self, dataset, options, src, resize, workers, source, strict=False):
        self.args = (dataset, options, src, resize, strict)
        self.workers = max(1, workers)
        self.source = source
        self.pool = None

    def __enter__(self):
        if self.workers > 1:
            # spawn, not fork: a plugin may hold threads or CUDA state that must not be forked
            ctx = multiprocessing.get_context("spawn")
            self.pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=self.args)
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            stop_pool(self.pool)

    def shards(self, shards: list[Shard], advance: Callable[[int], None] | None = None
               ) -> Iterator[tuple[Shard, list, list]]:
        """Each shard with its samples and skipped files, in order; `advance(1)` after every source file."""
        tasks = [(s.split, key) for s in shards for key in s.keys]
        if self.pool is not None:
            results = map(_from_shared, self.pool.imap(_load_to_shared, tasks, chunksize=2))
        else:
            _WORKER.update(source=self.source, resize=self.args[3], strict=self.args[4])
            results = map(_load_in_worker, tasks)
        for shard in shards:
            samples, skipped = [], []
            for _ in shard.keys:
                result = next(results)
                if isinstance(result, Sample):
                    samples.append(result)
                else:
                    skipped.append(result)
                if advance:
                    advance(1)
            yield shard, samples, skipped


def stop_pool(pool, timeout: float = 10.0) -> None:
    """`pool.terminate()` and `join()`, given up after `timeout` seconds. Stopped while workers are busy (an
    error, --strict, Ctrl-C), terminate can wait forever on the result queue's lock that a worker held when it
    was killed (a limitation of multiprocessing.Pool); the wait is then abandoned in its daemon thread and any
    worker still alive is killed."""
    stopper = threading.Thread(target=lambda: (pool.terminate(), pool.join()), daemon=True)
    stopper.start()
    stopper.join(timeout)
    if stopper.is_alive():
        for process in getattr(pool, "_pool", []):  # the workers (a private attribute of multiprocessing.Pool)
            if process.is_alive():
                process.kill()


_WORKER: dict[str, Any] = {}


def _init_worker(dataset: str, options: dict, src: Path | None, resize, strict: bool) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    spec = registry.get("datasets", dataset)
    _WORKER.update(source=spec.build(options, src=src), resize=resize, strict=strict)


def _load_in_worker(task: tuple[str, str]) -> Sample | tuple[str, str]:
    split, key = task
    source = _WORKER["source"]
    try:
        sample = source.load(split, key)
    except SkipSample as skip:
        if _WORKER["strict"]:
            raise SpadekitError(
                f"Sample {key!r} ({split}) cannot be used: {skip}; fix or remove that file "
                "(without --strict it is skipped and listed)."
            ) from None
        return (key, str(skip))
    sample.check()
    _check_label_ids(sample, source.facts, split)
    if _WORKER["resize"]:
        sample = resize_sample(sample, _WORKER["resize"])
    return sample


# A decoded sample is large (16 MB at 2048x1024 with instances); sent back through the pool's pipe it costs
# the main process more time than decoding it did (measured: 2 workers slower than 1). Workers therefore hand
# the pixels over in a shared-memory block, which the main process copies out and unlinks.
_ARRAYS = ("image", "label", "instance")


def _load_to_shared(task: tuple[str, str]) -> tuple:
    result = _load_in_worker(task)
    if not isinstance(result, Sample):
        return result  # (key, reason) of a skipped file
    arrays = [getattr(result, name) for name in _ARRAYS if getattr(result, name) is not None]
    block = shared_memory.SharedMemory(create=True, size=max(1, sum(a.nbytes for a in arrays)))
    layout, offset = [], 0
    for array in arrays:
        np.ndarray(array.shape, array.dtype, buffer=block.buf, offset=offset)[...] = array
        layout.append((array.shape, array.dtype.str, offset))
        offset += array.nbytes
    block.close()
    return ("shared", result.key, block.name, layout)


def _from_shared(result: tuple) -> Sample | tuple[str, str]:
    if result[0] != "shared":
        return result
    _, key, name, layout = result
    block = shared_memory.SharedMemory(name=name)
    try:
        arrays = [np.ndarray(shape, dtype, buffer=block.buf, offset=offset).copy() for shape, dtype, offset in layout]
    finally:
        block.close()
        block.unlink()
    return Sample(key, *arrays)


def _check_label_ids(sample: Sample, facts: DatasetFacts, split: str) -> None:
    bad = facts.invalid_label_ids(sample.label)
    if bad:
        dontcare = f" and don't-care id {facts.dontcare_id}" if facts.dontcare_id is not None else ""
        raise SpadekitError(
            f"Label map of sample {sample.key!r} ({split}) holds id {bad[0]}, but {facts.name!r} has ids "
            f"0..{facts.label_nc - 1}{dontcare}; fix that label file or the dataset's class list."
        )


def resize_sample(sample: Sample, size: tuple[int, int]) -> Sample:
    """Resize to (width, height): bicubic for the image, nearest for labels and instances (as SPADE)."""
    if sample.label.shape == (size[1], size[0]):
        return sample
    image = np.asarray(Image.fromarray(sample.image).resize(size, Image.BICUBIC))
    label = _resize_nearest(sample.label, size)
    instance = None if sample.instance is None else _resize_nearest(sample.instance, size)
    return Sample(sample.key, image, label, instance)


def _resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # PIL picks the mode from the dtype: L (uint8), I;16 (uint16), I (int32)
    return np.asarray(Image.fromarray(array).resize(size, Image.NEAREST)).astype(array.dtype)
