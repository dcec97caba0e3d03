"""What the training loop is made of, built from a recipe: data, networks, optimizers, precision."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from spadekit.config import Recipe
from spadekit.data.dataset import EpochLoader, ShardDataset, finish, make_loader
from spadekit.data.manifest import DatasetFacts, Manifest
from spadekit.data.transforms import Preprocess
from spadekit.errors import SpadekitError
from spadekit.generator import GeneratorContext, build_generator
from spadekit.nn.discriminator import MultiscaleDiscriminator
from spadekit.nn.norms import convert_sync_batchnorm
from spadekit.nn.semantics import LabelSpace
from spadekit.nn.vgg import VGGLoss
from spadekit.train.distributed import DistEnv

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def shards_of(recipe: Recipe) -> Path:
    if recipe.data.shards is None:
        raise SpadekitError(
            'The recipe sets no data.shards: add `shards = "PATH"` under [data] or pass '
            "--set data.shards=PATH (make shards with `spadekit prepare`)."
        )
    return Path(recipe.data.shards)


def preprocess_of(recipe: Recipe) -> Preprocess:
    d = recipe.data
    return Preprocess(
        mode=d.preprocess, load_size=d.load_size, crop_size=d.crop_size, aspect_ratio=d.aspect_ratio, flip=d.flip
    )


def generator_context(recipe: Recipe, facts: DatasetFacts) -> GeneratorContext:
    """Label space from the shards' facts, geometry from the recipe's crop (never label counts from a recipe)."""
    space = LabelSpace.from_facts(facts, recipe.data.use_instance)
    return GeneratorContext(space, recipe.data.crop_size, recipe.data.aspect_ratio)


def check_precision(precision: str, device: torch.device, option: str = "train.precision") -> None:
    """Refuse precisions the device would run slowly or unsafely, with the reason."""
    if precision == "fp16" and device.type != "cuda":
        raise SpadekitError(f"{option} fp16 needs a CUDA GPU (fp16 on a CPU is slow and unscaled); "
                            "use bf16 or fp32 on the CPU.")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        raise SpadekitError(f"{option} bf16 on this CPU would run in software emulation (it has no "
                            "AVX512-BF16 or AMX; emulated bf16 is hundreds of times slower than fp32); use fp32.")


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX), which makes bf16 autocast pay off."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(precision: str, device: torch.device):
    """bf16/fp16 autocast around forward passes; a no-op in fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def train_loader(recipe: Recipe, env: DistEnv) -> EpochLoader:
    d = recipe.data
    if d.batch_size % env.world_size:
        raise SpadekitError(
            f"data.batch_size {d.batch_size} does not split evenly over {env.world_size} "
            f"processes; use a multiple of {env.world_size}."
        )
    dataset = ShardDataset(shards_of(recipe), d.split, preprocess_of(recipe), train=True, seed=recipe.train.seed)
    per_rank = d.batch_size // env.world_size
    if len(dataset) < d.batch_size:
        raise SpadekitError(
            f"The {d.split!r} split of {d.shards} has {len(dataset)} samples, fewer than "
            f"data.batch_size {d.batch_size}; lower the batch size or prepare more data."
        )
    return make_loader(
        dataset,
        per_rank,
        d.num_workers,
        shuffle=True,
        drop_last=True,
        seed=recipe.train.seed,
        distributed=env.distributed,
        device=env.device,
    )


def sample_batch(recipe: Recipe, device: torch.device) -> dict:
    """A fixed batch for the sample grids: the first images of the validation split (else the training one),
    without random flips."""
    root = shards_of(recipe)
    split = recipe.bench.split if recipe.bench.split in Manifest.load(root).splits else recipe.data.split
    dataset = ShardDataset(root, split, preprocess_of(recipe), train=False, seed=recipe.train.seed)
    items = [dataset[i] for i in range(min(recipe.train.sample_rows, len(dataset)))]
    batch = {key: torch.stack([item[key] for item in items]) for key in ("image", "label", "instance")}
    return finish({**batch, "key": [item["key"] for item in items]}, device)


@dataclass
class Networks:
    generator: nn.Module
    discriminator: nn.Module
    vgg: VGGLoss | None


def build_networks(recipe: Recipe, context: GeneratorContext, env: DistEnv) -> Networks:
    torch.manual_seed(recipe.train.seed)  # identical initial weights on every rank
    generator = build_generator(recipe.model.name, recipe.model.options, context)
    discriminator = build_discriminator(recipe, context)
    vgg = VGGLoss(weights=recipe.loss.vgg_weights) if recipe.loss.lambda_vgg > 0 else None
    if env.distributed and env.device.type == "cuda":
        generator, discriminator = convert_sync_batchnorm(generator), convert_sync_batchnorm(discriminator)
    return Networks(generator.to(env.device), discriminator.to(env.device), vgg.to(env.device) if vgg else None)


def build_discriminator(recipe: Recipe, context: GeneratorContext) -> MultiscaleDiscriminator:
    """The recipe's multi-scale PatchGAN; it sees the semantics and the RGB image concatenated."""
    d = recipe.discriminator
    return MultiscaleDiscriminator(context.semantic_nc + 3, d.num_D, d.ndf, d.n_layers, d.norm)


def adam(params, lr: float, recipe: Recipe) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=(recipe.optim.beta1, recipe.optim.beta2))
