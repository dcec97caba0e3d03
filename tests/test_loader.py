"""The training data loader: transforms, edges, ShardDataset, make_loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.data.dataset import ShardDataset, finish, make_loader
from spadekit.data.edges import instance_edges, instance_edges_np
from spadekit.data.manifest import DatasetFacts, Manifest, ShardInfo, SplitInfo
from spadekit.data.sample import Sample
from spadekit.data.shards import shard_name, write_shard
from spadekit.data.transforms import (
    Preprocess,
    make_plan,
    nearest_index,
    resize_image,
    transform_image,
    transform_map,
)
from spadekit.errors import SpadekitError

NC = 6


def write_dataset(root, samples, label_nc=NC, dontcare=None, per_shard=3):
    chunks = [samples[i : i + per_shard] for i in range(0, len(samples), per_shard)]
    shards = []
    for k, chunk in enumerate(chunks):
        name = shard_name("train", k, len(chunks))
        digest = write_shard(root / name, "train", k, chunk)
        shards.append(ShardInfo(file=name, num_samples=len(chunk), sha256=digest))
    facts = DatasetFacts(
        name="t", class_names=[f"c{i}" for i in range(label_nc)],
        palette=[(i, i, i) for i in range(label_nc)],
        dontcare_id=dontcare, has_instances=samples[0].instance is not None,
    )
    Manifest(dataset=facts, splits={"train": SplitInfo(num_samples=len(samples), shards=shards)}).save(root)
    return root


def random_samples(n=7, sizes=((40, 56), (48, 36)), instances=True, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        label = rng.integers(0, NC, (h, w), dtype=np.uint8)
        inst = rng.integers(0, 4, (h, w)).astype(np.int32) if instances else None
        out.append(Sample(f"s{i}", image, label, inst))
    return out


def coded_sample(key, h, w, rng):
    """Label and instance derived from image pixels, so any geometric mismatch shows."""
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Sample(key, image, image[..., 0] % NC, image[..., 1].astype(np.int32) * 256 + image[..., 2])


@pytest.fixture
def shards(tmp_path):
    return write_dataset(tmp_path, random_samples())


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return ((image + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    "mode,expected",  # input is 50 high x 70 wide
    [
        ("resize_and_crop", (32, 32)),
        ("fixed", (16, 32)),  # crop 32 wide, round(32 / 2.0) high
        ("scale_width_and_crop", (32, 32)),  # 40 x int(40*50/70)=28, crop 32 pads like PIL crop
        ("none", (64, 64)),  # round(50/32)*32, round(70/32)*32
    ],
)
def test_mode_output_size(mode, expected):
    p = Preprocess(mode=mode, load_size=40, crop_size=32, aspect_ratio=2.0)
    rng = np.random.default_rng(0)
    sample = random_samples(1, sizes=((50, 70),))[0]
    plan = make_plan(p, 70, 50, True, rng)
    assert transform_image(sample.image, plan).shape == (3, *expected)
    assert transform_map(sample.label, plan).shape == expected
    assert transform_map(sample.instance, plan).shape == expected


def test_scale_width_keeps_aspect_and_none_rounds_half_to_even():
    p = Preprocess(mode="scale_width_and_crop", load_size=40, crop_size=20, flip=False)
    plan = make_plan(p, 80, 120, False, np.random.default_rng(0))
    assert plan.size == (40, 60)
    plan = make_plan(Preprocess(mode="none"), 80, 48, False, np.random.default_rng(0))
    assert plan.size == (64, 64)  # 80/32 = 2.5 -> 2 and 48/32 = 1.5 -> 2, as Python's round


def test_workers_send_compact_items(shards):
    item = ShardDataset(shards, "train", Preprocess(load_size=40, crop_size=32))[1]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 32, 32)
    assert item["label"].dtype == torch.uint8 and item["instance"].dtype == torch.uint16  # ids < 65536
    assert "edge" not in item  # computed by `finish`, on the consumer's device


def test_dataset_tensors(shards):
    ds = ShardDataset(shards, "train", Preprocess(load_size=40, crop_size=32), train=True)
    item = finish(ds[1])
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 32, 32)
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["image"].min() < -0.9 and item["image"].max() > 0.9  # really rescaled, not [0,1]
    assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 32, 32)
    assert item["instance"].dtype in (torch.int32, torch.int64) and item["instance"].shape == (1, 32, 32)
    assert item["edge"].dtype == torch.float32 and item["edge"].shape == (1, 32, 32)
    assert item["key"] == "s1" and ds.has_instances
    assert torch.equal(item["edge"], instance_edges(item["instance"]))


def test_same_crop_and_flip_for_image_label_instance(tmp_path):
    rng = np.random.default_rng(1)
    samples = [coded_sample(f"c{i}", 30 + 4 * i, 48, rng) for i in range(6)]
    # width == load_size: no resize (official __scale_width returns the image), so pixels are exact
    ds = ShardDataset(write_dataset(tmp_path, samples), "train",
                      Preprocess(mode="scale_width_and_crop", load_size=48, crop_size=24))
    flips = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = finish(ds[i])
            img = to_uint8(item["image"]).astype(np.int64)
            assert np.array_equal(item["label"][0].numpy(), img[..., 0] % NC)
            assert np.array_equal(item["instance"][0].numpy(), img[..., 1] * 256 + img[..., 2])
            flips += not _is_unflipped_crop(samples[i].image, img)
    assert flips > 0  # flips happened, and the maps followed them


def _is_unflipped_crop(source, crop):
    h, w = crop.shape[:2]
    return any(np.array_equal(source[y : y + h, x : x + w], crop)
               for y in range(source.shape[0] - h + 1) for x in range(source.shape[1] - w + 1))


def test_resized_label_stays_aligned_with_bicubic_image():
    y, x = np.mgrid[0:60, 0:80]
    label = ((y // 10) * 8 + x // 10).astype(np.uint16)
    parity = ((y // 10 + x // 10) % 2).astype(np.uint8)
    image = np.repeat((parity * 255)[..., None], 3, axis=2)
    for seed in range(8):
        plan = make_plan(Preprocess(load_size=70, crop_size=56), 80, 60, True, np.random.default_rng(seed))
        out_label = transform_map(label, plan)
        out_image = transform_image(image, plan)[0].numpy().astype(int)
        interior = np.ones(out_label.shape, bool)
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                interior &= out_label == np.roll(out_label, (dy, dx), axis=(0, 1))
        expect = ((out_label // 8 + out_label % 8) % 2) * 255
        assert interior.mean() > 0.2
        assert np.abs(out_image - expect)[interior].max() < 64


@pytest.mark.parametrize("mode", ["resize_and_crop", "fixed", "scale_width_and_crop", "none"])
def test_labels_never_interpolated(mode):
    rng = np.random.default_rng(2)
    label = rng.choice(np.array([3, 17, 200], np.uint8), size=(45, 61))
    inst = rng.choice(np.array([0, 1000, 70000], np.int32), size=(45, 61))
    p = Preprocess(mode=mode, load_size=50, crop_size=40, aspect_ratio=1.5)
    plan = make_plan(p, 61, 45, True, rng)
    assert set(np.unique(transform_map(label, plan))) <= {0, 3, 17, 200}  # 0: PIL crop padding
    assert set(np.unique(transform_map(inst, plan))) <= {0, 1000, 70000}
    image = transform_image(np.repeat(label[..., None], 3, axis=2), plan)
    assert len(torch.unique(image)) > 4  # the image, unlike the maps, is interpolated


def test_nearest_matches_pil_exactly():
    for n_in, n_out in [(320, 286), (1024, 286), (1000, 999), (37, 100), (2048, 512), (7, 3)]:
        row = np.arange(n_in, dtype=np.int32)[None].repeat(2, axis=0)
        ref = np.asarray(Image.fromarray(row).resize((n_out, 2), Image.NEAREST))[0]
        assert np.array_equal(nearest_index(n_in, n_out), ref), (n_in, n_out)


def test_bicubic_matches_pil_up_to_rounding():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    for size in [(70, 50), (128, 100), (90, 60 * 2)]:
        ref = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC)).astype(int)
        diff = np.abs(resize_image(image, size).permute(1, 2, 0).numpy().astype(int) - ref)
        assert diff.max() <= 2 and (diff > 0).mean() < 0.02


def test_flip_only_at_train_time():
    p = Preprocess(load_size=40, crop_size=32)
    flips = [make_plan(p, 50, 50, True, np.random.default_rng(s)).flip for s in range(40)]
    assert 5 < sum(flips) < 35
    assert not any(make_plan(p, 50, 50, False, np.random.default_rng(s)).flip for s in range(40))
    assert not any(make_plan(p.model_copy(update={"flip": False}), 50, 50, True,
                             np.random.default_rng(s)).flip for s in range(40))


def test_eval_dataset_never_flips(tmp_path):
    rng = np.random.default_rng(4)
    samples = [coded_sample(f"c{i}", 24, 32, rng) for i in range(4)]
    root = write_dataset(tmp_path, samples)
    p = Preprocess(mode="scale_width_and_crop", load_size=32, crop_size=24)
    for train, expect_all_unflipped in [(False, True), (True, False)]:
        ds = ShardDataset(root, "train", p, train=train)
        unflipped = []
        for epoch in range(4):
            ds.set_epoch(epoch)
            unflipped += [_is_unflipped_crop(samples[i].image, to_uint8(finish(ds[i])["image"])) for i in range(4)]
        assert all(unflipped) == expect_all_unflipped


def test_determinism_per_seed_epoch_index(shards):
    p = Preprocess(load_size=48, crop_size=24)
    a, b = ShardDataset(shards, "train", p, seed=5), ShardDataset(shards, "train", p, seed=5)
    a.set_epoch(2)
    b.set_epoch(2)
    assert all(torch.equal(a[i]["image"], b[i]["image"]) for i in range(len(a)))
    b.set_epoch(3)
    assert not all(torch.equal(a[i]["image"], b[i]["image"]) for i in range(len(a)))
    c = ShardDataset(shards, "train", p, seed=6)
    c.set_epoch(2)
    assert not all(torch.equal(a[i]["image"], c[i]["image"]) for i in range(len(a)))


def _epochs(shards, workers):
    ds = ShardDataset(shards, "train", Preprocess(load_size=40, crop_size=32), seed=1)
    loader = make_loader(ds, batch_size=3, num_workers=workers, shuffle=True, drop_last=True, seed=9)
    out = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        out.append([(b["key"], b["image"], b["label"], b["instance"], b["edge"]) for b in loader])
    return out


def test_workers_do_not_change_batches(shards):
    single, multi = _epochs(shards, 0), _epochs(shards, 2)  # 2 workers: HDF5 opened inside each worker
    for e in range(2):
        assert len(single[e]) == len(multi[e]) == 2
        for x, y in zip(single[e], multi[e], strict=True):
            assert x[0] == y[0]
            assert all(torch.equal(u, v) for u, v in zip(x[1:], y[1:], strict=True))
    assert [b[0] for b in single[0]] != [b[0] for b in single[1]]  # the shuffle changes per epoch


def brute_edges(inst):
    h, w = inst.shape
    out = np.zeros((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                if 0 <= y + dy < h and 0 <= x + dx < w and inst[y + dy, x + dx] != inst[y, x]:
                    out[y, x] = 1
    return out


def test_edges_match_brute_force():
    rng = np.random.default_rng(5)
    batch = rng.integers(0, 3, (3, 1, 13, 17)).astype(np.int32)
    ref = np.stack([brute_edges(b[0]) for b in batch])[:, None]
    t = torch.from_numpy(batch)
    assert torch.equal(instance_edges(t), torch.from_numpy(ref))
    assert torch.equal(instance_edges(t[0]), torch.from_numpy(ref[0]))
    assert torch.equal(instance_edges(t[0, 0]), torch.from_numpy(ref[0, 0]))
    assert np.array_equal(instance_edges_np(batch), ref)
    assert instance_edges(t).dtype == torch.float32


def test_dontcare_maps_to_label_nc(tmp_path):
    samples = random_samples(3, sizes=((64, 32),))  # multiples of 32: mode 'none' does not resize
    samples[1].label[:5] = 255
    ds = ShardDataset(write_dataset(tmp_path, samples, dontcare=255), "train",
                      Preprocess(mode="none"), train=False)
    label = finish(ds[1])["label"]
    assert (label[0, :5] == NC).all() and label.max() == NC
    assert (label[0, 5:40] < NC).all()


def test_out_of_range_label_raises(tmp_path):
    samples = random_samples(3)
    samples[2].label[3, 4] = 200
    ds = ShardDataset(write_dataset(tmp_path, samples, dontcare=255), "train")
    ds[0]
    with pytest.raises(SpadekitError, match=r"label id 200 in sample 's2' exceeds the dataset's 6 classes"):
        ds[2]


def test_dataset_without_instances(tmp_path):
    ds = ShardDataset(write_dataset(tmp_path, random_samples(4, instances=False)), "train",
                      Preprocess(load_size=40, crop_size=32))
    assert not ds.has_instances
    item = finish(ds[3])
    assert item["instance"].shape == item["edge"].shape == (1, 32, 32)
    assert not item["instance"].any() and not item["edge"].any()
    batch = next(iter(make_loader(ds, batch_size=2, num_workers=0, shuffle=False)))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["edge"].shape == (2, 1, 32, 32)


def test_more_than_255_classes_keep_their_ids(tmp_path):
    samples = random_samples(2, sizes=((32, 32),))
    for s in samples:
        s.label = (s.label.astype(np.uint16) * 60)  # ids up to 300
    ds = ShardDataset(write_dataset(tmp_path, samples, label_nc=301), "train", Preprocess(mode="none"), train=False)
    item = ds[0]
    assert item["label"].dtype == torch.int32
    assert np.array_equal(finish(item)["label"][0].numpy(), samples[0].label.astype(np.int64))
