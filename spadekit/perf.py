"""`spadekit perf`: how fast spadekit runs on this machine, beside what the machine can do.

Measured, each as the median of `repeats` runs after warm-up:
- the matmul peak of the device in fp32 and bf16 (a square matmul, GFLOP/s): the roof to read the rest against;
- the SPADE generator's forward per 256x256 image in the COCO-Stuff configuration (184 input channels, the
  paper's generator, batch 1) on the fast inference path as every command prepares it
  (`spadekit.synthesis.Synthesizer`), fp32 and bf16, with the achieved GFLOP/s: the model's nominal FLOPs
  (counted by torch's FlopCounterMode on the plain computation, 382 GFLOP) over the time, so table-lookup
  shortcuts count as if they had done the convolution. The work of the fast path depends on the label map
  (`spadekit.nn.regions` skips the convolutions inside uniform regions), so it is timed on two: a scene like a
  painted mask or a segmentation (a toyscapes landscape, its 9 classes spread over COCO-Stuff's ids, with
  instance edges; the `generator_forward_s_*` keys) and a worst case (`*_blocky`: a new random class on every
  16x16 block, where region borders cover half the image);
- the official NVlabs/SPADE generator's fp32 forward on the scene mask, op for op as its code runs
  (`spadekit.nvlabs.official_forward`: NCHW, every SPADE resizing the semantics and convolving the whole map,
  spectral norm per forward), the bar: `generator_forward_vs_official_*` is each forward's time over it (SPADE
  only; null for other models);
- one training step (a G update, then a D update: hinge + feature matching, no VGG) of that configuration at
  batch 1, fp32 and bf16;
- the step's images/s, nominal TFLOP/s (`train_step_flops`: the plain computation's FLOPs, by FlopCounterMode)
  and their fraction of the device's peak: the vendor's dense bf16 figure for the GPUs listed in
  `BF16_SPEC_PEAKS`, else the matmul peak measured in this run (`--batch N` adds the same at batch N: `*_batch`);
- with `compile` (`spadekit perf --compile`, default on GPUs): the forward compiled as `spadekit serve --compile`
  runs it, and the training step at the largest batch with the recipe options `train.compile` and
  `train.channels_last`, each with its compile time (`COMPILED_KEYS`);
- the training loader's samples/s (toyscapes shards at 286 px, random 256 crops and flips, batch 8) with 0
  and 2 worker processes, and prepare's images/s (toyscapes at 256 px, 2 workers).
bf16 is measured only where the device runs it natively (CPUs with AVX512-BF16 or AMX; GPUs); elsewhere it
is reported as null, with the reason.

`model` (`spadekit perf --model NAME`, default "spade") times another generator plugin, with its default
options and its own discriminator and objective, in the same places under the same keys ("model" says which):
e.g. "clade" for CLADE's forward and training step beside SPADE's.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from spadekit.device import DTYPES, autocast, cpu_has_fast_bf16
from spadekit.generator import GeneratorContext, build_generator, build_on_meta
from spadekit.nn.semantics import LabelSpace, to_semantics
from spadekit.nn.spade_fast import enable_fast_path
from spadekit.synthesis import Synthesizer
from spadekit.train import build

COCO_SPACE = LabelSpace(182, dontcare=True, use_instance=True)  # 184 input channels
PER_PRECISION = ("matmul_peak_gflops_{}", "generator_forward_s_{}", "generator_achieved_gflops_{}",
                 "generator_forward_s_{}_blocky", "generator_achieved_gflops_{}_blocky", "train_step_s_{}")
# the forward's time as a fraction of the official code's fp32 forward on the scene mask (SPADE only)
VS_OFFICIAL = ("generator_forward_vs_official_{}", "generator_forward_vs_official_{}_blocky")
SIZE = 256

# per precision: images/s of the training step, its nominal TFLOP/s, and their fraction of the peak (the vendor's
# dense bf16 figure where known, else the matmul peak measured in the same run)
STEP_KEYS = ("train_step_images_per_s_{}", "train_step_achieved_tflops_{}", "train_step_peak_fraction_{}")
# with `compile`, per precision: the compiled batch-1 forward (`spadekit serve --compile`) and the training step at the
# largest batch timed with train.compile and train.channels_last, each with the seconds its first call spent compiling
COMPILED_KEYS = ("generator_forward_s_{}_compiled", "generator_compile_s_{}", "train_step_s_{}_compiled",
                 "train_step_compile_s_{}") + tuple(key + "_compiled" for key in STEP_KEYS)
# dense bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s, by device-name fragment (the first that
# matches); figures for other GPUs are read against the measured matmul peak instead
BF16_SPEC_PEAKS = (("H100 PCIe", 756.0, "NVIDIA H100 PCIe datasheet"),
                   ("H100", 989.4, "NVIDIA H100 SXM datasheet"),
                   ("H200", 989.4, "NVIDIA H200 SXM datasheet"),
                   ("A100", 312.0, "NVIDIA A100 datasheet"))


def timed(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device) -> float:
    """Median seconds of `fn()` over `repeats` runs after `warmup` runs."""
    times = []
    for i in range(warmup + repeats):
        sync_device(device)
        start = time.perf_counter()
        fn()
        sync_device(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def compile_and_median(fn: Callable[[], object], repeats: int, warmup: int,
                       device: torch.device) -> tuple[float, float]:
    """(seconds the first call took beyond a timed one: its compilation, median seconds) of a compiled `fn`."""
    sync_device(device)
    start = time.perf_counter()
    fn()
    sync_device(device)
    first = time.perf_counter() - start
    median = timed(fn, repeats, warmup, device)
    return max(first - median, 0.0), median


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPUs): timings end when the work does."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device, n: int | None = None, repeats: int = 5) -> float:
    n = n or (8192 if device.type == "cuda" else 2048)  # a GPU needs a large product to approach its peak
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    return 2 * n**3 / timed(lambda: a @ b, repeats, 2, device) / 1e9


def blocky_semantics(space: LabelSpace, batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """Segmentation-like semantics (a painted-mask stand-in): labels constant on 16x16 blocks, edges on the
    block borders."""
    gen = torch.Generator().manual_seed(seed)
    cells = max(size // 16, 1)
    coarse = torch.randint(0, space.one_hot_nc, (batch, 1, cells, cells), generator=gen)
    label = F.interpolate(coarse.float(), size=(size, size), mode="nearest").long()
    edge = torch.zeros(batch, 1, size, size)
    edge[..., 1:, :] += (label[..., 1:, :] != label[..., :-1, :]).float()
    edge[..., :, 1:] += (label[..., :, 1:] != label[..., :, :-1]).float()
    return to_semantics(label, edge.clamp_(max=1), space)


def scene_semantics(space: LabelSpace, batch: int, size: int) -> torch.Tensor:
    """Painted-mask-like semantics: toyscapes landscapes (sky, clouds, mountains, water, trees, ...) with their
    instance edges, class k relabelled to id 20 k so that they spread over a large label space."""
    from spadekit import registry
    from spadekit.data.edges import instance_edges

    toyscapes = registry.get("datasets", "toyscapes").build({"seed": 0, "size": size, "num_val": batch})
    scenes = [toyscapes.load("val", key) for key in toyscapes.keys("val")]
    label = torch.stack([torch.from_numpy(s.label.astype("int64")) for s in scenes])[:, None]
    instance = torch.stack([torch.from_numpy(s.instance.astype("int64")) for s in scenes])[:, None]
    step = max(1, (space.one_hot_nc - 1) // int(label.max()))
    return to_semantics(label * step, instance_edges(instance), space)


MASKS = {"scene": scene_semantics, "blocky": blocky_semantics}


def generator_flops(space: LabelSpace = COCO_SPACE, size: int = SIZE, model: str = "spade") -> float:
    """Nominal FLOPs of one generator forward (the plain computation), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    generator = build_on_meta(model, {}, GeneratorContext(space, size)).eval()  # not on the fast path
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        generator(torch.zeros(1, space.semantic_nc, size, size, device="meta"))
    return float(counter.get_total_flops())


def generator_forward_s(precision: str, device: torch.device, repeats: int, size: int = SIZE,
                        mask: str = "scene", model: str = "spade") -> float:
    return timed(_forward(precision, device, size, mask, model), repeats, 2, device)


def _forward(precision: str, device: torch.device, size: int, mask: str, model: str,
             compile: bool = False) -> Callable[[], object]:
    """One batch-1 forward of the generator as synth and serve prepare it (`compile`: `spadekit serve --compile`)."""
    torch.manual_seed(0)
    engine = Synthesizer(build_generator(model, {}, GeneratorContext(COCO_SPACE, size)), COCO_SPACE, device,
                         precision, compile=compile)
    semantics = MASKS[mask](COCO_SPACE, 1, size).to(device)
    return lambda: engine.forward(semantics, None)


def compiled_figures(precision: str, device: torch.device, repeats: int, size: int, model: str, batch: int,
                     step_gflop: float, peak: float) -> dict:
    """The compiled forward (`spadekit serve --compile`, scene mask, batch 1) and the training step at `batch`
    with `train.compile` and `train.channels_last`, each with its compile time: the `COMPILED_KEYS`."""
    compile_s, forward_s = compile_and_median(_forward(precision, device, size, "scene", model, compile=True),
                                              max(repeats, 5), 2, device)
    result = {f"generator_forward_s_{precision}_compiled": forward_s, f"generator_compile_s_{precision}": compile_s}
    step = training_step(precision, device, COCO_SPACE, size, batch, channels_last=True, model=model, compile=True)
    compile_s, step_s = compile_and_median(step, repeats, 2, device)
    result.update({f"train_step_s_{precision}_compiled": step_s, f"train_step_compile_s_{precision}": compile_s})
    return {**result, **_step_rates(step_gflop, peak, precision, batch, step_s, "_compiled")}


def official_forward_s(device: torch.device, repeats: int, size: int = SIZE) -> float:
    """Seconds of the official NVlabs/SPADE generator's fp32 forward (`spadekit.nvlabs.official_forward`) on the
    scene mask: the bar the fast paths are read against."""
    from spadekit.nvlabs.official_forward import official_forward

    torch.manual_seed(0)
    generator = build_generator("spade", {}, GeneratorContext(COCO_SPACE, size)).eval().to(device)
    semantics = MASKS["scene"](COCO_SPACE, 1, size).to(device)
    return timed(lambda: official_forward(generator, semantics), repeats, 1, device)


def train_step_s(precision: str, device: torch.device, repeats: int, warmup: int = 1,
                 space: LabelSpace = COCO_SPACE, size: int = SIZE, batch: int = 1, plain: bool = False,
                 channels_last: bool = False, model: str = "spade", ddp: bool = False) -> float:
    """Median seconds of one training step (G update, then D update) of the generator (SPADE's by default)
    at `size`."""
    step = training_step(precision, device, space, size, batch, plain, channels_last, model, ddp)
    return timed(step, repeats, warmup, device)


def train_step_flops(space: LabelSpace = COCO_SPACE, size: int = SIZE, model: str = "spade") -> float:
    """Nominal FLOPs of one training step at batch 1 (the plain computation: convolutions and matmuls of the G
    step's forward and backward, the D step's, counted by FlopCounterMode on the meta device, or on the CPU for a
    method whose losses read label values, such as OASIS's class balancing, which the meta device cannot)."""
    try:
        return _counted_step_flops(torch.device("meta"), space, size, model)
    except NotImplementedError:  # an operator without a meta kernel (torch.unique)
        return _counted_step_flops(torch.device("cpu"), space, size, model)


def _counted_step_flops(device: torch.device, space: LabelSpace, size: int, model: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    step = training_step("fp32", device, space, size, 1, plain=True, model=model)
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def training_step(precision: str, device: torch.device, space: LabelSpace = COCO_SPACE, size: int = SIZE,
                  batch: int = 1, plain: bool = False, channels_last: bool = False,
                  model: str = "spade", ddp: bool = False, compile: bool = False) -> Callable[[], None]:
    """One training step as the trainer runs it, with the model's own discriminator and objective (the paper's:
    hinge + feature matching), no VGG, as a function to call. `plain`: SPADE without the one-hot lookups (the
    official computation); `channels_last`, `compile`: the recipe's `train.channels_last` and `train.compile`
    (compile implies plain, as in the trainer); `ddp`: G's step and D wrapped in DistributedDataParallel, as the
    trainer does (the caller's process group)."""
    from spadekit.config import load_recipe
    from spadekit.train.objective import GeneratorStep

    recipe = load_recipe(None, {"model.name": model, "loss.lambda_vgg": 0.0})
    torch.manual_seed(0)
    context = GeneratorContext(space, size)
    generator = build_generator(model, {}, context).to(device)
    if not (plain or compile):  # what the trainer runs: one-hot table lookups where they pay
        enable_fast_path(generator)
    method = build.training_method(recipe, context)
    discriminator = method.build_discriminator().to(device)
    generator, discriminator = (build.tune(m, channels_last, compile) for m in (generator, discriminator))
    semantics, real = (build.to_layout(t.to(device), channels_last) for t in
                       (blocky_semantics(space, batch, size), torch.rand(batch, 3, size, size) * 2 - 1))
    g_step, d_net = GeneratorStep(generator), discriminator
    if ddp:
        ids = [device.index or 0] if device.type == "cuda" else None
        g_step, d_net = (torch.nn.parallel.DistributedDataParallel(m, device_ids=ids) for m in (g_step, d_net))
    objective = method.objective(g_step, d_net, None)
    opt_G = build.adam(generator.parameters(), recipe.optim.lr_G, recipe)
    opt_D = build.adam(discriminator.parameters(), recipe.optim.lr_D, recipe)

    def step() -> None:
        for optimizer, losses in ((opt_G, lambda: objective.generator_losses(semantics, real)[0]),
                                  (opt_D, lambda: objective.discriminator_losses(semantics, real))):
            with autocast(precision, device):
                loss = sum(losses().values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return step


def data_rates(scratch: Path, repeats: int) -> dict[str, float]:
    """prepare images/s (toyscapes 256 px, 2 workers) and the loader's samples/s (0 and 2 workers)."""
    from spadekit.data.dataset import ShardDataset, make_loader
    from spadekit.data.prepare import prepare
    from spadekit.data.transforms import Preprocess

    count = 96
    start = time.perf_counter()
    prepare("toyscapes", scratch / "toy", settings={"num_train": count, "num_val": 1, "size": 286},
            splits=["train"], workers=2)
    rates = {"prepare_images_per_s": count / (time.perf_counter() - start)}
    dataset = ShardDataset(scratch / "toy", "train", Preprocess(load_size=286, crop_size=256), train=True)
    for workers in (0, 2):
        loader = make_loader(dataset, 8, workers, shuffle=True, drop_last=True, seed=0, device="cpu")

        def epoch(loader=loader) -> None:
            for _ in loader:
                pass

        seconds = timed(epoch, repeats, 1, torch.device("cpu"))
        rates[f"loader_samples_per_s_workers{workers}"] = len(loader) * 8 / seconds
    return rates


def measure(device: torch.device, repeats: int = 3, report: Callable[[str], None] = print,
            size: int = SIZE, model: str = "spade", batch: int = 1, compile: bool = False) -> dict:
    """Every figure of the module docstring, as one flat dict (keys as in `spadekit perf --json`); `size`
    other than 256 is for a quick look only (the keys keep their names; "size" says which was used); `model`
    the generator plugin timed (the keys keep their names; "model" says which); `batch` > 1 also times the
    training step at that batch size (the `*_batch` keys); `compile` adds the `COMPILED_KEYS` (null without)."""
    result: dict = {"device": _device_name(device), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "size": size, "model": model, "train_batch": batch,
                    "compiled": compile}
    spec = spec_peak_tflops(device)
    result["bf16_spec_peak_tflops"] = spec[0] if spec else None  # the vendor's dense bf16 figure, if known
    result["bf16_spec_peak_source"] = spec[1] if spec else None
    result["train_step_gflop"] = train_step_flops(COCO_SPACE, size, model) / 1e9  # per image
    bf16 = device.type == "cuda" or cpu_has_fast_bf16()
    precisions = ["fp32", "bf16"] if bf16 else ["fp32"]
    if not bf16:
        result["bf16_skipped"] = "this CPU has no native bf16 (AVX512-BF16 or AMX); emulated bf16 is not measured"
    flops = generator_flops(COCO_SPACE, size, model)
    result["generator_gflop"] = flops / 1e9
    keys = PER_PRECISION + VS_OFFICIAL + STEP_KEYS + tuple(key + "_batch" for key in ("train_step_s_{}",) + STEP_KEYS)
    keys += COMPILED_KEYS
    result.update({key.format(p): None for key in keys for p in ("fp32", "bf16")})
    result["official_forward_s_fp32"] = None  # null if not run: the bar is SPADE's official code
    if model == "spade":
        report(f"official NVlabs/SPADE generator forward fp32 (COCO-Stuff {size}x{size}, batch 1, scene mask) ...")
        result["official_forward_s_fp32"] = official_forward_s(device, repeats, size)
    for p in precisions:
        report(f"matmul peak {p} ...")
        result[f"matmul_peak_gflops_{p}"] = matmul_peak_gflops(DTYPES[p], device)
        for mask, suffix in (("scene", ""), ("blocky", "_blocky")):
            report(f"{model} generator forward {p} (COCO-Stuff {size}x{size}, batch 1, {mask} mask) ...")
            seconds = generator_forward_s(p, device, max(repeats, 5), size, mask, model)
            result[f"generator_forward_s_{p}{suffix}"] = seconds
            result[f"generator_achieved_gflops_{p}{suffix}"] = flops / seconds / 1e9
            if result["official_forward_s_fp32"] is not None:
                result[f"generator_forward_vs_official_{p}{suffix}"] = seconds / result["official_forward_s_fp32"]
        for n, suffix in step_batches(batch):
            report(f"{model} training step {p} (COCO-Stuff {size}x{size}, batch {n}) ...")
            seconds = train_step_s(p, device, repeats, size=size, batch=n, model=model)
            result[f"train_step_s_{p}{suffix}"] = seconds
            result.update(_step_rates(result["train_step_gflop"], peak_tflops(result, p), p, n, seconds, suffix))
        if compile:
            largest = step_batches(batch)[-1][0]
            report(f"{model} compiled forward (batch 1) and training step {p} (batch {largest}, channels_last) ...")
            result.update(compiled_figures(p, device, repeats, size, model, largest,
                                           result["train_step_gflop"], peak_tflops(result, p)))
    report("prepare and loader ...")
    with tempfile.TemporaryDirectory(prefix="spadekit-perf-") as scratch:
        result.update(data_rates(Path(scratch), repeats))
    return result


def step_batches(batch: int) -> tuple[tuple[int, str], ...]:
    """The batch sizes the training step is timed at, with their key suffixes: 1, and `batch` when larger."""
    return ((1, ""), (batch, "_batch")) if batch > 1 else ((1, ""),)


def spec_peak_tflops(device: torch.device) -> tuple[float, str] | None:
    """(dense bf16 TFLOP/s, source) of a GPU whose datasheet figure is listed; None elsewhere."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next(((peak, source) for fragment, peak, source in BF16_SPEC_PEAKS if fragment in name), None)


def peak_tflops(result: dict, precision: str) -> float:
    """The peak a step is read against: the vendor's dense bf16 figure where listed, else the measured matmul peak."""
    spec = result["bf16_spec_peak_tflops"] if precision == "bf16" else None
    return spec or result[f"matmul_peak_gflops_{precision}"] / 1e3


def _step_rates(step_gflop: float, peak: float, precision: str, batch: int, seconds: float, suffix: str) -> dict:
    """`STEP_KEYS` of a step of `step_gflop` per image at `batch` taking `seconds`, against `peak` TFLOP/s."""
    achieved = step_gflop * batch / seconds / 1e3  # TFLOP/s
    return {f"train_step_images_per_s_{precision}{suffix}": batch / seconds,
            f"train_step_achieved_tflops_{precision}{suffix}": achieved,
            f"train_step_peak_fraction_{precision}{suffix}": achieved / peak}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "cpu")
    return f"cpu: {model}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
