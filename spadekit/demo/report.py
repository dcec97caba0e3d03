"""The demo's report: OUT/report.html and its markdown twin OUT/report.md, with figures under OUT/report/.

Sections: what ran (steps, times, commands to reproduce each), the benchmark (protocol and scores, SPADE's
mIoU beside the segmenter's on the real images), the loss curves, the sample grids, the style pair, and what
to run next.
"""

from __future__ import annotations

import html
import json
from functools import partial
from pathlib import Path

from PIL import Image

from spadekit.bench.protocol import Protocol
from spadekit.bench.report import relative_path
from spadekit.bench.scores import ACCURACY, FID, KID, MIOU
from spadekit.fileio import atomic_write_text

LOSSES = ("G_GAN", "G_feat", "G_L1", "KLD", "D_fake", "D_real")


def write_report(demo) -> dict:
    """The report of the steps `demo.state` records as finished."""
    figures = demo.out / "report"
    figures.mkdir(parents=True, exist_ok=True)
    scores = json.loads((demo.run / "bench" / "val" / "scores.json").read_text(encoding="utf-8"))["runs"][0]
    loss_plot(demo.run / "metrics.jsonl", figures / "losses.png")
    painted = sorted((demo.synth / "painted").glob("*.png"))
    _tiles([[demo.synth / "masks" / p.name for p in painted], painted], figures / "synth.png")
    _tiles([[demo.synth / "masks" / "mask_0.png"] + [demo.synth / f"{kind}_{style}.png" for style in ("sunset", "day")
                                                    for kind in ("style", "styled")]], figures / "style.png")
    sections = _sections(demo, scores)
    atomic_write_text(demo.out / "report.md", _markdown(sections))
    atomic_write_text(demo.out / "report.html", _html(sections))
    return {"miou_ratio": _ratio(scores)}


def loss_plot(metrics: Path, out: Path) -> None:
    """The training losses against the step, one panel for G's terms and one for D's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    fig, (g_axis, d_axis) = plt.subplots(1, 2, figsize=(10, 3.4))
    for key in LOSSES:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            axis = d_axis if key.startswith("D_") else g_axis
            axis.plot(*zip(*points, strict=True), label=key, linewidth=1.2)
    for axis, title in ((g_axis, "generator"), (d_axis, "discriminator")):
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _ratio(scores: dict) -> float | None:
    miou, real = scores["scores"][MIOU], (scores.get("real_images") or {}).get(MIOU)
    return miou / real if miou is not None and real else None


def _pct(value: float | None) -> str:
    return "n/c" if value is None else f"{100 * value:.1f}"


def _sections(demo, scores: dict) -> list[tuple[str, list]]:
    """(title, blocks); a block is ("p", text), ("table", header, rows), ("img", path, alt) or ("code", text)."""
    steps = demo.state["steps"]
    total = sum(step["seconds"] for step in steps.values())
    real = scores.get("real_images") or {}
    s = scores["scores"]
    ratio = _ratio(scores)
    bench_rows = [["SPADE (" + scores["checkpoint"] + ")", _pct(s[MIOU]), _pct(s[ACCURACY]),
                   "n/c" if s[FID] is None else f"{s[FID]:.1f}",
                   "n/c" if s[KID] is None else f"{1000 * s[KID]:.2f}"],
                  ["real images", _pct(real.get(MIOU)), _pct(real.get(ACCURACY)), "-", "-"]]
    protocol = Protocol.model_validate(scores["protocol"]).rows()
    reasons = [f"{key} not computed: {why}" for key, why in scores["not_computed"].items() if key in (FID, KID)]
    commands = demo.commands()
    step_rows = [[name, f"{step['seconds']:.0f} s", commands[name]] for name, step in steps.items()]
    samples = sorted((demo.run / "samples").glob("step_*.png"))
    rel = partial(relative_path, start=demo.out)
    verdict = "n/c" if ratio is None else f"{100 * ratio:.0f}%"
    return [
        ("What ran", [("p", f"The whole pipeline on toyscapes in {total / 60:.1f} minutes; each step and the "
                             "command that reproduces it:"),
                      ("table", ["step", "time", "command"], step_rows)]),
        ("Benchmark", [("p", f"SPADE's images segmented by the evaluation segmenter reach {verdict} of the mIoU "
                             "the same segmenter gets on the real validation images (mIoU and accuracy in %)."),
                       ("table", ["images", "mIoU", "accuracy", "FID", "KID x1000"], bench_rows),
                       *[("p", reason) for reason in reasons],
                       ("table", ["protocol", ""], [list(row) for row in protocol])]),
        ("Training", [("img", rel(demo.out / "report" / "losses.png"), "loss curves"),
                      *([("p", f"Training samples at {samples[-1].stem} (label | generated | real):"),
                         ("img", rel(samples[-1]), "training samples")] if samples else [])]),
        ("Synthesis", [("p", "Validation masks painted from the prior (mask | result), and the benchmark grid "
                             "(label | generated | real):"),
                       ("img", rel(demo.out / "report" / "synth.png"), "painted masks"),
                       ("img", rel(demo.run / "bench" / "val" / "grid.png"), "benchmark grid"),
                       ("p", "One mask painted with two style photos: mask | sunset photo | result | noon photo | "
                             "result:"),
                       ("img", rel(demo.out / "report" / "style.png"), "style pair")]),
        ("Next", [("code", f"spadekit serve {demo.run}"),
                  ("p", "opens the painting page on http://127.0.0.1:7860/ with this run; "
                        f"`spadekit synth MASK.png --style PHOTO --run {demo.run}` paints from the command line.")]),
    ]


def _markdown(sections: list) -> str:
    lines = ["# spadekit demo", ""]
    for title, blocks in sections:
        lines += [f"## {title}", ""]
        for kind, *body in blocks:
            if kind == "p":
                lines += [body[0], ""]
            elif kind == "code":
                lines += ["```", body[0], "```", ""]
            elif kind == "img":
                lines += [f"![{body[1]}]({body[0]})", ""]
            else:
                header, rows = body
                lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows] + [""]
    return "\n".join(lines)


def _html(sections: list) -> str:
    out = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>spadekit demo</title><style>",
           "body{font:15px system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}",
           "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
           "text-align:left;vertical-align:top}code,pre{background:#f3f3f3}pre{padding:.6em}"
           "img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd}</style></head><body>",
           "<h1>spadekit demo</h1>"]
    for title, blocks in sections:
        out.append(f"<h2>{html.escape(title)}</h2>")
        for kind, *body in blocks:
            if kind == "p":
                out.append(f"<p>{html.escape(body[0])}</p>")
            elif kind == "code":
                out.append(f"<pre><code>{html.escape(body[0])}</code></pre>")
            elif kind == "img":
                out.append(f"<p><img src='{html.escape(body[0])}' alt='{html.escape(body[1])}'></p>")
            else:
                header, rows = body
                cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                out.append(f"<table><tr>{cells}</tr>")
                for row in rows:  # a "command" column is shown as code
                    cells = "".join(f"<td><code>{html.escape(c)}</code></td>" if header[i] == "command"
                                    else f"<td>{html.escape(c)}</td>" for i, c in enumerate(row))
                    out.append(f"<tr>{cells}</tr>")
                out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _tiles(rows: list[list[Path]], out: Path, height: int = 128, gap: int = 4) -> None:
    """The images in rows, each scaled (nearest) to `height` pixels high, `gap` white pixels apart."""
    grid = [[_scaled(path, height) for path in row] for row in rows]
    width = max(sum(i.width for i in row) + gap * (len(row) - 1) for row in grid)
    canvas = Image.new("RGB", (width, len(grid) * (height + gap) - gap), "white")
    for r, row in enumerate(grid):
        x = 0
        for image in row:
            canvas.paste(image, (x, r * (height + gap)))
            x += image.width + gap
    canvas.save(out)


def _scaled(path: Path, height: int) -> Image.Image:
    image = Image.open(path).convert("RGB")
    return image.resize((image.width * height // image.height, height), Image.NEAREST)
