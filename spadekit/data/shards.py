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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from spadekit.data.manifest import MANIFEST_NAME, SCHEMA_VERSION
from spadekit.data.sample import Sample
from spadekit.data.writes import first_line, os_reason
from spadekit.errors import SpadekitError
from spadekit.fileio import fsync_file, sha256_file

ARRAYS = ("image", "label", "instance")


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.h5"


def write_shard(path: Path, split: str, index: int, samples: list[Sample], has_instances: bool | None = None) -> str:
    """Write samples to `path` atomically (temp file, fsync, rename) and return the file's sha256.

    The bytes depend only on the samples, so re-writing a shard gives the same checksum. `has_instances`
    (default: whether the samples have instance maps) matters for a shard whose every source file was
    skipped: it still holds (empty) instance arrays when the dataset has instance maps, as its manifest says.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if has_instances is None:
        has_instances = bool(samples) and samples[0].instance is not None
    try:
        _write_h5(tmp, split, index, samples, has_instances)
        fsync_file(tmp)
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # nothing half-written stays behind, whatever failed (a full disk, too)
        raise
    return digest


def _write_h5(tmp: Path, split: str, index: int, samples: list[Sample], has_instances: bool) -> None:
    with h5py.File(tmp, "w", libver="v110", track_order=False) as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["split"] = split
        f.attrs["index"] = index
        f.create_dataset("keys", data=[s.key for s in samples], dtype=h5py.string_dtype())
        f.create_dataset("shapes", data=np.array([s.label.shape for s in samples], np.int32).reshape(-1, 2))
        for name in ARRAYS if has_instances else ARRAYS[:2]:
            parts = [_stored(name, getattr(s, name)) for s in samples]
            empty = np.zeros(0, np.uint16 if name == "instance" else np.uint8)
            flat = np.concatenate([p.ravel() for p in parts]) if parts else empty
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


# (path, sha256) -> the file's (inode, size, mtime) when this process last hashed it; forked DataLoader workers
# inherit it, so a split checked once in the main process is not hashed again by every worker
_VERIFIED: dict[tuple[str, str], tuple[int, int, int]] = {}


def _signature(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ShardFile:
    """Random access to the samples of one shard file; the HDF5 file is opened on first use.

    Given the manifest's `sha256`, the file is checked against it before its first read in each process
    (again only if the file changed since): pixels are stored raw, so a flipped byte would otherwise be read
    back as a silently different pixel by every reader that promises exact data. Measured on a 2-core EPYC:
    sha256 at 1.9 GB/s, 53 ms for a 100 MB shard (256 toyscapes samples at 256 px), 3% of one loader epoch
    over that shard, paid once per process rather than per epoch.
    """

    def __init__(self, path: Path, sha256: str | None = None):
        self.path = Path(path)
        self.sha256 = sha256
        self._file: h5py.File | None = None
        self._pid = -1

    def verify(self) -> None:
        """Raise one sentence naming the shard when it is missing or differs from the manifest's checksum."""
        if self.sha256 is None:
            return
        key = (str(self.path), self.sha256)
        try:
            signature = _signature(self.path)
            if _VERIFIED.get(key) == signature:
                return
            matches = sha256_file(self.path) == self.sha256
        except FileNotFoundError:
            raise self.damaged("is missing") from None
        except OSError as err:
            raise self.damaged(f"cannot be read ({os_reason(err)})") from err
        if not matches:
            raise self.damaged(f"does not match its sha256 in {MANIFEST_NAME} (it was changed or damaged)")
        _VERIFIED[key] = signature

    def damaged(self, problem: str) -> SpadekitError:
        """The one error of a bad shard: what is wrong, and the command that lists every damaged shard."""
        root = self.path.parent
        return SpadekitError(
            f"Shard {self.path} {problem}; `spadekit data verify {root}` checks every shard and says how to "
            "re-create damaged ones."
        )

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """h5py's errors on a file it cannot parse (KeyError, OSError, ValueError) as the shard's one sentence."""
        try:
            yield
        except (OSError, KeyError, ValueError) as err:
            raise self.damaged(f"cannot be read ({first_line(err)})") from err

    def _open(self) -> h5py.File:
        # h5py handles must not cross a fork: each DataLoader worker opens its own
        if self._file is None or self._pid != os.getpid():
            self.verify()
            with self._reading():
                f = h5py.File(self.path, "r")
                self._keys = [k.decode() if isinstance(k, bytes) else k for k in f["keys"][()]]
                self._shapes = f["shapes"][()]
                self._offsets = {n: f[f"{n}_offsets"][()] for n in ARRAYS if n in f}
                self._arrays = {n: _direct(f[n], self.path) for n in self._offsets}
            self._file, self._pid = f, os.getpid()  # only a fully read index counts as open
        return self._file

    def stored_dtype(self, name: str) -> np.dtype | None:
        """The dtype of array `name` in this shard (None if absent), opening the file only briefly: an h5py
        handle must not outlive a fork into DataLoader workers."""
        self.verify()
        with self._reading(), h5py.File(self.path, "r") as f:
            return f[name].dtype if name in f else None

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
        with self._reading():
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
        # a spawned worker gets the checked state with the file's signature: it re-hashes only a changed file
        return {"path": self.path, "sha256": self.sha256, "verified": _VERIFIED.get((str(self.path), self.sha256))}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["sha256"])
        if state["verified"] is not None:
            _VERIFIED.setdefault((str(self.path), self.sha256), state["verified"])
