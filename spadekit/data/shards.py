"""HDF5 shard files: many samples per file, pixels stored raw.

Layout of one shard (schema 1). Samples may differ in size, so each kind of pixel array is stored as one
flat, contiguous uint8/uint16/int32 array with per-sample offsets; reading sample i is one slice, no
decoding (raw storage was chosen by measurement: PNG decoding is what a data loader otherwise waits for).

    attrs:    schema_version, split, index
    keys      (N,) variable-length UTF-8: the source file stem of each sample
    shapes    (N, 2) int32: height, width
    image     flat uint8, H*W*3 per sample       image_offsets    (N+1,) int64
    label     flat uint8 or uint16, H*W          label_offsets    (N+1,) int64
    instance  flat uint16 or int32, H*W          instance_offsets (N+1,) int64   (only with instance maps)
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from spadekit.data.manifest import SCHEMA_VERSION
from spadekit.data.sample import Sample
from spadekit.fileio import fsync_file, sha256_file

ARRAYS = ("image", "label", "instance")


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.h5"


def write_shard(path: Path, split: str, index: int, samples: list[Sample]) -> str:
    """Write samples to `path` atomically (temp file, fsync, rename) and return the file's sha256.

    The bytes depend only on the samples, so re-writing a shard gives the same checksum.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        _write_h5(tmp, split, index, samples)
    except BaseException:
        tmp.unlink(missing_ok=True)  # nothing half-written stays behind
        raise
    fsync_file(tmp)
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    return digest


def _write_h5(tmp: Path, split: str, index: int, samples: list[Sample]) -> None:
    with h5py.File(tmp, "w", libver="v110", track_order=False) as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["split"] = split
        f.attrs["index"] = index
        f.create_dataset("keys", data=[s.key for s in samples], dtype=h5py.string_dtype())
        f.create_dataset("shapes", data=np.array([s.label.shape for s in samples], np.int32).reshape(-1, 2))
        has_instances = bool(samples) and samples[0].instance is not None
        for name in ARRAYS if has_instances else ARRAYS[:2]:
            parts = [_stored(name, getattr(s, name)) for s in samples]
            flat = np.concatenate([p.ravel() for p in parts]) if parts else np.zeros(0, np.uint8)
            if name == "instance" and flat.size and flat.min() >= 0 and flat.max() <= np.iinfo(np.uint16).max:
                flat = flat.astype(np.uint16)  # most instance maps fit 16 bits: half the bytes to read
            offsets = np.concatenate([[0], np.cumsum([p.size for p in parts], dtype=np.int64)])
            f.create_dataset(name, data=flat)
            f.create_dataset(f"{name}_offsets", data=offsets.astype(np.int64))


def _stored(name: str, array: np.ndarray | None) -> np.ndarray:
    if array is None:
        raise ValueError(f"a shard mixes samples with and without {name} maps")
    return np.ascontiguousarray(array)


def _direct(dataset: h5py.Dataset, path: Path) -> np.ndarray | h5py.Dataset:
    """A memory map of a contiguous, uncompressed dataset (a sample read is then a memcpy, ~10x faster
    than h5py's per-call overhead); the h5py dataset itself where HDF5 gives no file offset."""
    offset = dataset.id.get_offset()
    if offset is None or dataset.chunks is not None or dataset.size == 0:
        return dataset
    return np.memmap(path, dtype=dataset.dtype, mode="r", offset=offset, shape=dataset.shape)


class ShardFile:
    """Random access to the samples of one shard file; the HDF5 file is opened on first use."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid = -1

    def _open(self) -> h5py.File:
        # h5py handles must not cross a fork: each DataLoader worker opens its own
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._keys = [k.decode() if isinstance(k, bytes) else k for k in self._file["keys"][()]]
            self._shapes = self._file["shapes"][()]
            self._offsets = {n: self._file[f"{n}_offsets"][()] for n in ARRAYS if n in self._file}
            self._arrays = {n: _direct(self._file[n], self.path) for n in self._offsets}
        return self._file

    def __len__(self) -> int:
        self._open()
        return len(self._keys)

    @property
    def keys(self) -> list[str]:
        self._open()
        return self._keys

    @property
    def has_instances(self) -> bool:
        return "instance" in self._open()

    def read(self, i: int) -> Sample:
        self._open()
        h, w = (int(v) for v in self._shapes[i])
        image = self._slice("image", i).reshape(h, w, 3)
        label = self._slice("label", i).reshape(h, w)
        instance = None
        if "instance" in self._offsets:
            instance = self._slice("instance", i).reshape(h, w).astype(np.int32)
        return Sample(self._keys[i], image, label, instance)

    def _slice(self, name: str, i: int) -> np.ndarray:
        offsets = self._offsets[name]
        return np.array(self._arrays[name][offsets[i] : offsets[i + 1]])

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "_file": None, "_pid": -1}
