"""The bench report: a table like the paper's Table 1 in the terminal, JSON, and a markdown page with the
protocol, per-class IoU and a grid of label | generated | real examples.

Rows marked "(published)" are a paper's numbers for the run's method on its dataset, never measured here. A
missing score is "n/c" (not computed) with its reason under the table; mIoU and accuracy are percentages,
as in the paper; KID is shown x1000 with its standard deviation over the subsets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from rich.table import Table

from spadekit.bench.runner import RunResult
from spadekit.bench.scores import ACCURACY, FID, KID, KID_STD, MIOU
from spadekit.console import console
from spadekit.data.palette import colour_lut
from spadekit.fileio import atomic_write_text
from spadekit.imageio import save_png
from spadekit.images import sample_grid
from spadekit.run_info import RunInfo

NOT_COMPUTED = "n/c"


def percent(value: float | None) -> str:
    return NOT_COMPUTED if value is None else f"{100 * value:.1f}"


def fid_text(value: float | None) -> str:
    return NOT_COMPUTED if value is None else f"{value:.2f}"


def kid_text(result: RunResult) -> str:
    kid, std = result.scores[KID], result.scores[KID_STD]
    return NOT_COMPUTED if kid is None else f"{1000 * kid:.2f} ± {1000 * std:.2f}"


def protocols(results: list[RunResult]) -> list[tuple[list[str], object]]:
    """The distinct protocols, each with the names of the runs measured under it."""
    groups: list[tuple[list[str], object]] = []
    for result in results:
        for names, protocol in groups:
            if protocol == result.protocol:
                names.append(result.name)
                break
        else:
            groups.append(([result.name], result.protocol))
    return groups


def reasons(results: list[RunResult]) -> list[str]:
    """One line per distinct reason a score was not computed."""
    lines: dict[str, list[str]] = {}
    for result in results:
        for metric, reason in result.not_computed.items():
            lines.setdefault(reason, [])
            if metric not in lines[reason]:
                lines[reason].append(metric)
    return [f"{'/'.join(metrics)} not computed: {reason}" for reason, metrics in lines.items()]


def score_rows(results: list[RunResult]) -> list[list[str]]:
    rows = []
    for r in results:
        rows.append([r.name, r.generator, r.checkpoint, percent(r.scores[MIOU]), percent(r.scores[ACCURACY]),
                     fid_text(r.scores[FID]), kid_text(r), f"{r.timing['images_per_s']:.2f}"])
    return rows


def real_rows(results: list[RunResult]) -> list[list[str]]:
    """The segmenter on the real images: one row per real set and segmenter, the reference for the runs."""
    rows, seen = [], set()
    for r in results:
        key = (r.protocol.real_set_key(), r.protocol.segmenter_sha256)
        if r.real_scores and key not in seen:
            seen.add(key)
            rows.append([f"real images ({r.protocol.split}, {r.protocol.num_images})", "-", "-",
                         percent(r.real_scores[MIOU]), percent(r.real_scores[ACCURACY]), "-", "-", "-"])
    return rows


def published_rows(results: list[RunResult]) -> list[list[str]]:
    """What the papers report for each run's method on its dataset, once per method and dataset."""
    rows, seen = [], set()
    for r in results:
        key = (r.generator, r.protocol.dataset)
        if r.published and key not in seen:
            seen.add(key)
            p = r.published
            rows.append([f"{p.method} (published)", r.generator, p.source, _published(p.miou),
                         _published(p.accuracy), _published(p.fid), "-", "-"])
    return rows


def _published(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


HEADER = ["run", "generator", "checkpoint", "mIoU", "accu", "FID", "KID x1000", "images/s"]


def print_report(results: list[RunResult]) -> None:
    for names, protocol in protocols(results):
        table = Table(title=f"Protocol ({', '.join(names)})", show_header=False, title_justify="left")
        for name, value in protocol.rows():
            table.add_row(name, value)
        console.print(table)
    table = Table(title="Scores (mIoU and accu in %, higher is better; FID and KID lower is better)",
                  title_justify="left")
    for column in HEADER:
        left = column in ("run", "generator", "checkpoint")
        table.add_column(column, justify="left" if left else "right", no_wrap=column == "run")
    for row in score_rows(results):
        table.add_row(*row)
    for row in real_rows(results):
        table.add_row(*row, style="dim")
    for row in published_rows(results):
        table.add_row(*row, style="italic")
    console.print(table)
    for line in reasons(results):
        console.print(f"[yellow]{line}[/]", highlight=False)


def write_json(results: list[RunResult], path: Path) -> None:
    atomic_write_text(Path(path), json.dumps({"runs": [r.as_json() for r in results]}, indent=2) + "\n")


def save_grid(result: RunResult, path: Path) -> None:
    """label | generated | real for the first rows of the split."""
    facts = RunInfo.load(result.run_dir).facts
    labels = torch.stack([label for label, _, _ in result.grid])[:, 0]
    labels = labels.clamp(max=len(facts.class_names)).numpy()
    label_rgb = torch.from_numpy(colour_lut(facts)[labels]).permute(0, 3, 1, 2)
    fake = torch.stack([f for _, f, _ in result.grid])
    real = torch.stack([r for _, _, r in result.grid])
    save_png(path, sample_grid(label_rgb, fake, real).permute(1, 2, 0).numpy())


def markdown(results: list[RunResult], grids: dict[str, str]) -> str:
    """The report page; `grids` maps a run name to its grid image's path relative to the page."""
    lines = ["# spadekit bench", ""]
    for names, protocol in protocols(results):
        lines += [f"## Protocol ({', '.join(names)})", "", "| | |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in protocol.rows()]
        lines.append("")
    lines += ["## Scores", "", "mIoU and accu in %, higher is better; FID and KID (x1000) lower is better.", "",
              "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    rows = score_rows(results) + real_rows(results) + published_rows(results)
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    lines += [f"- {line}" for line in reasons(results)]
    lines += _per_class(results)
    for r in results:
        if r.name in grids:
            lines += ["", f"## {r.name}: label | generated | real", "", f"![{r.name}]({grids[r.name]})"]
    return "\n".join(lines) + "\n"


def _per_class(results: list[RunResult]) -> list[str]:
    scored = [r for r in results if r.per_class_iou]
    if not scored:
        return []
    classes = list(dict.fromkeys(name for r in scored for name in r.per_class_iou))
    lines = ["", "## IoU per class (%)", "", "| class | " + " | ".join(r.name for r in scored) + " |",
             "|---|" + "---|" * len(scored)]
    for name in classes:
        lines.append(f"| {name} | " + " | ".join(percent(r.per_class_iou.get(name)) for r in scored) + " |")
    return lines


def write_run_report(result: RunResult) -> None:
    """RUN_DIR/bench/<split>/: scores.json, grid.png, report.md."""
    out = result.out_dir
    write_json([result], out / "scores.json")
    if result.grid:
        save_grid(result, out / "grid.png")
    atomic_write_text(out / "report.md", markdown([result], {result.name: "grid.png"} if result.grid else {}))


def write_combined_report(results: list[RunResult], path: Path) -> None:
    """One page for several runs side by side; grids are linked from their run directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grids = {r.name: relative_path(r.out_dir / "grid.png", path.parent) for r in results if r.grid}
    atomic_write_text(path, markdown(results, grids))


def relative_path(target: Path, start: Path) -> str:
    """`target` relative to the folder `start`, with forward slashes (a link from a page in `start`)."""
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()

