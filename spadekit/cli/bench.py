"""`spadekit bench RUN_DIR [RUN_DIR ...]`: the paper's metrics for trained runs, with the protocol beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spadekit.cli.common import check_output, parse_sets
from spadekit.console import console, warn


def bench_command(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (made by `spadekit train` or `import`).")],
    split: Annotated[str | None, typer.Option("--split", help="Split to generate [default: recipe's, val]")] = None,
    num: Annotated[int | None, typer.Option("--num", min=1, help="Score the first N images of the split "
                                            "[default: all]")] = None,
    segmenter: Annotated[str | None, typer.Option("--segmenter", help="Segmenter plugin: drn, upernet, deeplabv2, "
                                            "smp, ... [default: the recipe's; smp with only --segmenter-ckpt]")] = None,
    segmenter_ckpt: Annotated[Path | None, typer.Option(
        "--segmenter-ckpt", help="Segmenter weights for mIoU/accuracy [default: the recipe's, or the torch hub cache]"
    )] = None,
    fid_weights: Annotated[Path | None, typer.Option("--fid-weights", help="torch-fidelity's Inception weights "
                                                     "[default: the torch hub cache's]")] = None,
    shards: Annotated[Path | None, typer.Option("--shards", help="The dataset's shards [default: the run's "
                                                "data.shards]")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write all results to this JSON file.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write one markdown page for all runs.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda [default: cuda if available]")] = None,
    precision: Annotated[str, typer.Option("--precision", help="fp32, bf16, fp16, or auto (bf16 where "
                                           "native) for the generator.")] = "fp32",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")] = 8,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Data loader processes.")] = 0,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Recipe override, e.g. --set bench.latent=prior "
                                                   "or bench.seed=1.")] = None,
) -> None:
    """Generate the split with each run's EMA generator and score it: mIoU and pixel accuracy through a
    segmenter, FID and KID through torch-fidelity. Results go to RUN_DIR/bench/<split>/."""
    from spadekit.bench.report import print_report, write_combined_report, write_json, write_run_report
    from spadekit.bench.runner import BenchJob, bench_run
    from spadekit.data.workers import cap_workers
    from spadekit.device import pick_device

    overrides = parse_sets(sets)
    for path, flag in ((json_out, "--json"), (report, "--report")):
        if path is not None:  # checked now: a bad path found after scoring would waste the whole benchmark
            check_output(path, flag)
    flags = {"bench.split": split, "bench.num_images": num, "bench.segmenter": segmenter,
             "bench.segmenter_ckpt": segmenter_ckpt, "bench.fid_weights": fid_weights, "data.shards": shards}
    overrides.update({key: str(value) if isinstance(value, Path) else value
                      for key, value in flags.items() if value is not None})
    chosen = pick_device(device)
    job = BenchJob(overrides, chosen, precision, batch_size, cap_workers(workers, "--workers", warn=warn))
    results = []
    for run in runs:
        result = bench_run(run, job)
        write_run_report(result)
        console.print(f"{run}: images and report in {result.out_dir}", highlight=False)
        results.append(result)
    print_report(results)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json(results, json_out)
    if report is not None:
        write_combined_report(results, report)
