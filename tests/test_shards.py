"""Shard files: what goes in comes out, byte-identical files for identical samples."""

from __future__ import annotations

import numpy as np

from spadekit.data.sample import Sample
from spadekit.data.shards import ShardFile, write_shard


def _samples(rng, with_instance=True, label_dtype=np.uint8):
    out = []
    for i, (h, w) in enumerate([(5, 7), (9, 4), (6, 6)]):
        inst = rng.integers(0, 70000, (h, w)).astype(np.int32) if with_instance else None
        label = rng.integers(0, 300 if label_dtype == np.uint16 else 255, (h, w)).astype(label_dtype)
        out.append(Sample(f"key_{i}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8), label, inst))
    return out


def test_samples_of_different_sizes_read_back_exactly(tmp_path):
    samples = _samples(np.random.default_rng(0), label_dtype=np.uint16)
    write_shard(tmp_path / "s.h5", "train", 0, samples)
    shard = ShardFile(tmp_path / "s.h5")
    assert len(shard) == 3 and shard.keys == ["key_0", "key_1", "key_2"]
    for i, want in enumerate(samples):
        got = shard.read(i)
        assert got.key == want.key
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.label, want.label)
        assert got.label.dtype == np.uint16
        np.testing.assert_array_equal(got.instance, want.instance)  # > 65535: stored as int32
        assert got.instance.dtype == np.int32


def test_shard_without_instance_maps_reads_none(tmp_path):
    write_shard(tmp_path / "s.h5", "val", 3, _samples(np.random.default_rng(1), with_instance=False))
    shard = ShardFile(tmp_path / "s.h5")
    assert not shard.has_instances and shard.read(1).instance is None


def test_identical_samples_give_identical_bytes(tmp_path):
    samples = _samples(np.random.default_rng(2))
    a = write_shard(tmp_path / "a.h5", "train", 0, samples)
    b = write_shard(tmp_path / "b.h5", "train", 0, samples)
    assert a == b
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]  # no temp files left
