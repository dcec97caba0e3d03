"""What the training loop is made of, built from a recipe: data, networks, optimizers, precision."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spadekit import registry
from spadekit.config import Recipe, shards_of
from spadekit.data.dataset import EpochLoader, ShardDataset, finish, make_loader
from spadekit.data.manifest import DatasetFacts, Manifest
from spadekit.errors import SpadekitError
from spadekit.generator import GeneratorContext, build_generator
from spadekit.method import Method
from spadekit.nn.norms import convert_sync_batchnorm
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.nn.spade_fast import enable_fast_path
from spadekit.nn.vgg import VGGLoss
from spadekit.train.distributed import DistEnv
from spadekit.train.objective import PaperMethod


def generator_context(recipe: Recipe, facts: DatasetFacts) -> GeneratorContext:
    """Label space from the shards' facts, geometry from the recipe's crop (never label counts from a recipe)."""
    space = LabelSpace.from_facts(facts, recipe.data.use_instance)
    return GeneratorContext(space, recipe.data.crop_size, recipe.data.aspect_ratio)


def train_loader(recipe: Recipe, env: DistEnv, num_workers: int | None = None) -> EpochLoader:
    """The training split's batches for this rank (`num_workers`: default the recipe's)."""
    d = recipe.data
    if d.batch_size % env.world_size:
        raise SpadekitError(
            f"data.batch_size {d.batch_size} does not split evenly over {env.world_size} "
            f"processes; use a multiple of {env.world_size}."
        )
    dataset = ShardDataset(shards_of(recipe), d.split, d.preprocessing(), train=True, seed=recipe.train.seed)
    per_rank = d.batch_size // env.world_size
    if len(dataset) < d.batch_size:
        raise SpadekitError(
            f"The {d.split!r} split of {d.shards} has {len(dataset)} samples, fewer than "
            f"data.batch_size {d.batch_size}; lower the batch size or prepare more data."
        )
    return make_loader(
        dataset,
        per_rank,
        d.num_workers if num_workers is None else num_workers,
        shuffle=True,
        drop_last=True,
        seed=recipe.train.seed,
        distributed=env.distributed,
        device=env.device,
    )


def ema_stat_semantics(loader: EpochLoader, step: int, count: int, context: GeneratorContext):
    """The first `count` training batches of an order seeded by `step`, as semantics (`spadekit.method`'s
    `ema_stat_batches`)."""
    loader.set_epoch(step)
    for _, batch in zip(range(count), loader, strict=False):
        yield to_semantics(batch["label"], batch["edge"], context.space)


def sample_batch(recipe: Recipe, device: torch.device) -> dict:
    """A fixed batch for the sample grids: the first images of the validation split (else the training one),
    without random flips."""
    root = shards_of(recipe)
    split = recipe.bench.split if recipe.bench.split in Manifest.load(root).splits else recipe.data.split
    dataset = ShardDataset(root, split, recipe.data.preprocessing(), train=False, seed=recipe.train.seed)
    items = [dataset[i] for i in range(min(recipe.train.sample_rows, len(dataset)))]
    batch = {key: torch.stack([item[key] for item in items]) for key in ("image", "label", "instance")}
    return finish({**batch, "key": [item["key"] for item in items]}, device)


@dataclass
class Networks:
    generator: nn.Module
    discriminator: nn.Module
    vgg: VGGLoss | None
    method: Method


def build_networks(recipe: Recipe, context: GeneratorContext, env: DistEnv) -> Networks:
    torch.manual_seed(recipe.train.seed)  # identical initial weights on every rank
    t = recipe.train
    generator = build_generator(recipe.model.name, recipe.model.options, context)
    if not t.compile:  # compile traces SPADE's plain form (the lookups' data-dependent paths do not trace)
        enable_fast_path(generator)  # the lookup conv pays in training too (768 -> 221 ms at 256 px, 184 classes)
    method = training_method(recipe, context)
    discriminator = method.build_discriminator()
    vgg = VGGLoss(weights=recipe.loss.vgg_weights) if recipe.loss.lambda_vgg > 0 else None
    if env.distributed and env.device.type == "cuda":
        generator, discriminator = convert_sync_batchnorm(generator), convert_sync_batchnorm(discriminator)
    networks = [tune(m.to(env.device), t.channels_last, t.compile) for m in (generator, discriminator)]
    vgg = tune(vgg.to(env.device), t.channels_last, t.compile) if vgg else None
    return Networks(*networks, vgg, method)


def tune(module: nn.Module, channels_last: bool, compile: bool) -> nn.Module:
    """`train.channels_last` (NHWC weights: cuDNN's tensor-core convolutions read NHWC without transposing) and
    `train.compile` (`nn.Module.compile`: the forward and backward traced and fused by torch.compile on the first
    call of each kind) on `module`, in place: parameter names and state-dict keys stay as they are, so
    checkpoints, the EMA and DDP see the plain module."""
    if channels_last:
        module.to(memory_format=torch.channels_last)
    if compile:
        module.compile()
    return module


def to_layout(tensor: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch tensor in the networks' memory format (`train.channels_last`)."""
    return tensor.contiguous(memory_format=torch.channels_last) if channels_last else tensor


def training_method(recipe: Recipe, context: GeneratorContext) -> Method:
    """The generator plugin's own method (discriminator and objective), else the paper's."""
    spec = registry.get("generators", recipe.model.name)
    if spec.method is None:
        return PaperMethod(context, recipe)
    method = spec.method(spec.parse_options(recipe.model.options), context=context, recipe=recipe)
    if not isinstance(method, Method):
        raise SpadekitError(
            f"Generator plugin {recipe.model.name!r}'s method returned {type(method).__name__}, which lacks "
            "build_discriminator or objective; see spadekit.method."
        )
    return method


def build_discriminator(recipe: Recipe, context: GeneratorContext) -> nn.Module:
    """The discriminator the recipe's generator trains against (the paper's PatchGAN unless its plugin
    brings one)."""
    return training_method(recipe, context).build_discriminator()


def adam(params, lr: float, recipe: Recipe) -> torch.optim.Adam:
    """The recipe's Adam, fused (one kernel over all the parameters) on the devices that have it: the same update,
    faster (SPADE's 97M generator parameters on 2 CPU cores: 0.03 s a step against 0.12-0.24 s per tensor)."""
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, betas=(recipe.optim.beta1, recipe.optim.beta2), fused=fused or None)
