"""`spadekit demo`: the whole pipeline on the built-in toyscapes data, step by step, resumable.

Steps, each a folder or file under OUT:
1. prepare    toyscapes -> OUT/shards (1,000 train and 100 val landscapes at 128 px by default);
2. segmenter  the evaluation segmenter (smp U-Net, ResNet-18, random init) -> OUT/segmenter/segmenter.pt;
3. train      SPADE in VAE mode with recipes/toyscapes_spade.toml for `minutes` -> OUT/run;
4. bench      mIoU and accuracy through the segmenter, FID/KID where Inception weights exist -> OUT/run/bench/val;
5. synth      a few validation masks, and one mask with a sunset and a noon style photo -> OUT/synth;
6. report     OUT/report.html and OUT/report.md.
OUT/demo.json records each finished step (seconds, results) and the settings; a re-run skips finished steps and
continues an interrupted one (prepare and training resume from what they wrote).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from spadekit.errors import SpadekitError
from spadekit.fileio import atomic_write_text

RECIPE_NAME = "toyscapes_spade.toml"  # shipped in recipes/, installed as the spadekit_recipes package
STYLES = ("sunset", "day")  # the style pair: toyscapes' sunset and noon
STATE = "demo.json"


@dataclass(frozen=True)
class DemoSettings:
    """The demo's sizes; the defaults fit 15 minutes on 2 CPU cores."""

    minutes: float = 8.0  # SPADE's training budget
    num_train: int = 1000
    num_val: int = 100
    size: int = 128  # stored image size; the recipe trains on 64x64 crops of 72x72
    segmenter_epochs: int = 3
    segmenter_size: int = 64
    bench_images: int = 100
    synth_masks: int = 4
    workers: int = 2
    max_steps: int = 100_000  # training stops at `minutes` or here, whichever comes first
    recipe_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. a smaller model for a quick test


@dataclass
class Demo:
    out: Path
    settings: DemoSettings
    say: Callable[[str], None] = print
    state: dict = field(default_factory=dict)  # demo.json: the settings and the finished steps

    @property
    def shards(self) -> Path:
        return self.out / "shards"

    @property
    def segmenter(self) -> Path:
        return self.out / "segmenter" / "segmenter.pt"

    @property
    def run(self) -> Path:
        return self.out / "run"

    @property
    def synth(self) -> Path:
        return self.out / "synth"

    def recipe_overrides(self) -> dict[str, Any]:
        return {"data.shards": str(self.shards), "train.max_minutes": self.settings.minutes,
                "train.max_steps": self.settings.max_steps, "bench.segmenter_ckpt": str(self.segmenter),
                "bench.num_images": self.settings.bench_images, **self.settings.recipe_overrides}

    def commands(self) -> dict[str, str]:
        """The command line that reproduces each step."""
        s, out = self.settings, self.out
        sets = " ".join(f"--set {k}={v}" for k, v in self.recipe_overrides().items())
        return {
            "prepare": f"spadekit prepare toyscapes --out {self.shards} --set num_train={s.num_train} "
                       f"--set num_val={s.num_val} --set size={s.size} --workers {s.workers} --resume",
            "segmenter": f"spadekit segmenter train {self.shards} --out {self.segmenter.parent} "
                         f"--epochs {s.segmenter_epochs} --size {s.segmenter_size}",
            "train": f"spadekit train recipes/{RECIPE_NAME} {sets} --run-dir {self.run}",
            "bench": f"spadekit bench {self.run} --report {self.run}/bench/val/report.md",
            "synth": f"spadekit synth {self.synth}/masks --run {self.run} --out {self.synth}/painted; "
                     f"spadekit synth {self.synth}/masks/mask_0.png --style {self.synth}/style_sunset.png "
                     f"--run {self.run} --out {self.synth}/styled_sunset.png (and style_day.png)",
            "report": f"spadekit demo --out {out}",
        }


def run_demo(out: Path, settings: DemoSettings = DemoSettings(), say: Callable[[str], None] = print) -> Path:
    """Run (or finish) the demo in `out`; the path of report.html."""
    from spadekit.demo import report

    demo = Demo(Path(out), settings, say)
    demo.state = _load_state(demo)
    done = demo.state["steps"]
    steps = [("prepare", _prepare), ("segmenter", _segmenter), ("train", _train), ("bench", _bench),
             ("synth", _synth), ("report", report.write_report)]
    for number, (name, step) in enumerate(steps, 1):
        if name in done:
            say(f"[{number}/{len(steps)}] {name}: done earlier ({done[name]['seconds']:.0f} s), skipped")
            continue
        say(f"[{number}/{len(steps)}] {name}: {demo.commands()[name]}")
        start = time.perf_counter()
        result = step(demo)
        done[name] = {"seconds": time.perf_counter() - start, **(result or {})}
        _save_state(demo)
    if "report" in done and not (demo.out / "report.html").is_file():  # deleted since: written again
        report.write_report(demo)
    return demo.out / "report.html"


def _load_state(demo: Demo) -> dict:
    path = demo.out / STATE
    wanted = json.loads(json.dumps(asdict(demo.settings)))
    if not path.is_file():
        if demo.out.is_dir() and any(demo.out.iterdir()):
            raise SpadekitError(f"{demo.out} is not empty and holds no {STATE}; give --out a new or empty folder.")
        demo.out.mkdir(parents=True, exist_ok=True)
        return {"settings": wanted, "steps": {}}
    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("settings") != wanted:
        raise SpadekitError(f"{demo.out} holds a demo made with other settings ({path}); give --out a new "
                            "folder, or the same --minutes as before.")
    return state


def _save_state(demo: Demo) -> None:
    atomic_write_text(demo.out / STATE, json.dumps(demo.state, indent=2) + "\n")


def _prepare(demo: Demo) -> dict:
    from spadekit.data.prepare import prepare

    s = demo.settings
    prepare("toyscapes", demo.shards, settings={"num_train": s.num_train, "num_val": s.num_val, "size": s.size},
            workers=s.workers, resume=True)
    return {"images": s.num_train + s.num_val}


def _segmenter(demo: Demo) -> dict:
    from spadekit.segmenter_train import SegmenterTrainJob, train_segmenter

    s = demo.settings
    scores = train_segmenter(SegmenterTrainJob(shards=demo.shards, out=demo.segmenter.parent,
                                               epochs=s.segmenter_epochs, size=s.segmenter_size, force=True))
    return {f"val_{key}": float(value) for key, value in scores.metrics().items()}


def _train(demo: Demo) -> dict:
    from spadekit.config import load_recipe
    from spadekit.train.loop import TrainJob, train

    recipe = load_recipe(recipe_path(), demo.recipe_overrides())
    train(TrainJob(recipe, demo.run, resume=(demo.run / "run.json").is_file()))
    steps = [json.loads(line)["step"] for line in (demo.run / "metrics.jsonl").read_text().splitlines() if line]
    return {"steps": max(steps, default=0)}


def recipe_path() -> Path:
    """The installed toyscapes_spade.toml."""
    path = Path(str(resources.files("spadekit_recipes") / RECIPE_NAME))
    if not path.is_file():
        raise SpadekitError(f"The demo's recipe {path} is missing; reinstall spadekit (pip install -e .).")
    return path


def _bench(demo: Demo) -> dict:
    from spadekit.bench.report import write_run_report
    from spadekit.bench.runner import BenchJob, bench_run

    result = bench_run(demo.run, BenchJob())
    write_run_report(result)
    return {"scores": result.scores, "real_images": result.real_scores, "not_computed": result.not_computed}


def _synth(demo: Demo) -> dict:
    from spadekit import registry
    from spadekit.data.palette import colourize
    from spadekit.data.reader import SplitReader
    from spadekit.imageio import save_png
    from spadekit.synthesis import Synthesizer, seeded

    engine = Synthesizer.load(demo.run, precision="fp32")
    facts = engine.info.facts
    (demo.synth / "masks").mkdir(parents=True, exist_ok=True)
    (demo.synth / "painted").mkdir(exist_ok=True)
    reader = SplitReader(demo.shards, "val")
    labels = [reader.read(i).label for i in range(min(demo.settings.synth_masks, len(reader)))]
    rng = seeded(0)
    for i, label in enumerate(labels):
        save_png(demo.synth / "masks" / f"mask_{i}.png", colourize(label, facts))
        image = engine.paint_maps([label], [None], 1, None, rng)[0]
        save_png(demo.synth / "painted" / f"mask_{i}.png", image.permute(1, 2, 0).numpy())
    unseen = registry.get("datasets", "toyscapes").build({"seed": 2026, "size": 128})  # keys the run never saw
    for style in STYLES:
        photo = unseen.style_photos(style, 1)[0]
        save_png(demo.synth / f"style_{style}.png", photo)
        image = engine.paint_maps([labels[0]], [None], 1, engine.encode_style(photo), rng)[0]
        save_png(demo.synth / f"styled_{style}.png", image.permute(1, 2, 0).numpy())
    return {"masks": len(labels), "styles": list(STYLES)}
