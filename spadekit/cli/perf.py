"""`spadekit perf`: the speed self-benchmark of this machine (see `spadekit.perf`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from spadekit.console import console
from spadekit.fileio import atomic_write_text


def perf_command(
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures as one flat JSON object.")]
    = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda [default: cuda if available]")] = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed runs per figure (the median is kept).")]
    = 3,
    size: Annotated[int, typer.Option("--size", min=64, help="Image side; other than 256 only for a quick look.")]
    = 256,
    model: Annotated[str, typer.Option("--model", help="The generator plugin to time, with its default options "
                                       "(e.g. clade); the figures keep their names and keys.")] = "spade",
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Also time the training step at this batch "
                                              "size (a recipe's) [default: 32 on a GPU, none on a CPU]")] = None,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="Also time the compiled forward "
                                                 "(serve --compile) and the step with train.compile and "
                                                 "train.channels_last, with their compile times [default: on a "
                                                 "GPU only: a CPU takes minutes to compile]")] = None,
) -> None:
    """Time the generator's forward (COCO-Stuff 256x256, fp32 and bf16) beside the matmul peak and the official
    code's forward, a training step (images/s, TFLOP/s, fraction of the peak), the loader and prepare on this
    machine. The generator is SPADE's unless --model names another generator plugin: `spadekit perf --model
    clade --size 256` times CLADE's forward and training step under the same keys (the JSON's "model" says
    which)."""
    from spadekit import registry
    from spadekit.device import pick_device
    from spadekit.perf import PER_PRECISION, VS_OFFICIAL, measure, step_batches

    registry.get("generators", model)  # an unknown name: one sentence naming the installed generators
    chosen = pick_device(device)
    batch = batch or (32 if chosen.type == "cuda" else 1)  # 32: the COCO-Stuff and ADE20K recipes' batch
    compile = chosen.type == "cuda" if compile is None else compile
    result = measure(chosen, repeats, lambda line: console.print(f"[dim]{line}[/]", highlight=False), size, model,
                     batch, compile)
    table = Table(title=f"spadekit perf on {result['device']} ({model} generator)", title_justify="left")
    for column in ("figure", "fp32", "bf16"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    rows = [("matmul peak GFLOP/s", "{:.0f}"),
            (f"generator forward s/image (COCO-Stuff {size}, scene)", "{:.3f}"),
            (f"  achieved GFLOP/s ({result['generator_gflop']:.0f} GFLOP/image)", "{:.0f}"),
            ("generator forward s/image (blocky worst case)", "{:.3f}"),
            ("  achieved GFLOP/s", "{:.0f}"),
            ("training step s (batch 1)", "{:.2f}")]
    for (name, fmt), key in zip(rows, PER_PRECISION, strict=True):
        table.add_row(name, *(_cell(result[key.format(p)], fmt) for p in ("fp32", "bf16")))
    if result["official_forward_s_fp32"] is not None:
        table.add_row("official NVlabs forward s/image (fp32, scene)", f"{result['official_forward_s_fp32']:.3f}", "")
        for label, key in (("  forward / official (scene)", VS_OFFICIAL[0]), ("  forward / official (blocky)",
                                                                              VS_OFFICIAL[1])):
            table.add_row(label, *(_cell(result[key.format(p)], "{:.3f}x") for p in ("fp32", "bf16")))
    for n, suffix in step_batches(batch):
        table.add_row(f"training step at batch {n}: images/s", *(_cell(result[f"train_step_images_per_s_{p}{suffix}"],
                                                                        "{:.2f}") for p in ("fp32", "bf16")))
        table.add_row("  achieved TFLOP/s / fraction of peak", *(
            _rate(result[f"train_step_achieved_tflops_{p}{suffix}"], result[f"train_step_peak_fraction_{p}{suffix}"])
            for p in ("fp32", "bf16")))
    if compile:
        _compiled_rows(table, result, step_batches(batch)[-1][0])
    table.add_row("loader samples/s (0 / 2 workers)", f"{result['loader_samples_per_s_workers0']:.0f} / "
                  f"{result['loader_samples_per_s_workers2']:.0f}", "")
    table.add_row("prepare images/s (toyscapes 286 px, 2 workers)", f"{result['prepare_images_per_s']:.1f}", "")
    console.print(table)
    peak = result["bf16_spec_peak_source"] or "the matmul peak measured above"
    console.print(f"training step: {result['train_step_gflop']:.0f} nominal GFLOP per image; peak: {peak}",
                  highlight=False)
    if "bf16_skipped" in result:
        console.print(f"bf16: {result['bf16_skipped']}", highlight=False)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")


def _compiled_rows(table: Table, result: dict, batch: int) -> None:
    rows = (("compiled forward s/image (serve --compile, scene)", "generator_forward_s_{}_compiled", "{:.4f}"),
            ("  compile s", "generator_compile_s_{}", "{:.0f}"),
            (f"compiled + channels_last step at batch {batch}: images/s", "train_step_images_per_s_{}_compiled",
             "{:.2f}"),
            ("  compile s", "train_step_compile_s_{}", "{:.0f}"))
    for name, key, fmt in rows:
        table.add_row(name, *(_cell(result[key.format(p)], fmt) for p in ("fp32", "bf16")))
        if key.startswith("train_step_images"):
            table.add_row("  achieved TFLOP/s / fraction of peak", *(
                _rate(result[f"train_step_achieved_tflops_{p}_compiled"],
                      result[f"train_step_peak_fraction_{p}_compiled"]) for p in ("fp32", "bf16")))


def _rate(tflops: float | None, fraction: float | None) -> str:
    return "-" if tflops is None else f"{tflops:.2f} / {100 * fraction:.0f}%"


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
