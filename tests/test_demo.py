"""`spadekit demo` end to end at tiny sizes: every step, the report, and a re-run that skips finished steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spadekit.demo.pipeline import DemoSettings, run_demo
from spadekit.errors import SpadekitError

TINY_DEMO = DemoSettings(
    minutes=5, max_steps=3, num_train=16, num_val=8, size=64, segmenter_epochs=1, bench_images=8, synth_masks=2,
    workers=1, recipe_overrides={
        "model.ngf": 4, "model.hidden": 16, "model.z_dim": 8, "discriminator.ndf": 8, "data.batch_size": 4,
        "data.num_workers": 0, "train.log_every": 1, "train.sample_every": 2, "train.checkpoint_every": 2,
    })


@pytest.fixture(scope="module")
def finished_demo(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """One tiny demo run to the end, shared by the module: (its folder, the report, what it said). Tests that
    change it work on a copy."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    said: list[str] = []
    report = run_demo(out, TINY_DEMO, said.append)
    return out, report, said


def test_the_demo_runs_end_to_end_and_resumes(finished_demo):
    out, report, said = finished_demo
    state = json.loads((out / "demo.json").read_text())
    assert list(state["steps"]) == ["prepare", "segmenter", "train", "bench", "synth", "report"]
    assert state["steps"]["train"]["steps"] == 3
    bench = state["steps"]["bench"]
    assert 0 <= bench["scores"]["miou"] <= 1 and 0 <= bench["real_images"]["miou"] <= 1
    assert "Inception weights" in bench["not_computed"]["fid"]  # absent here: marked, with the reason
    page = report.read_text()
    for words in ("What ran", "Benchmark", "of the mIoU", "fid not computed", "losses.png", "style.png",
                  "spadekit serve", "spadekit prepare toyscapes", "spadekit segmenter train"):
        assert words in page, words
    assert (out / "report.md").read_text().startswith("# spadekit demo")
    for figure in ("losses.png", "synth.png", "style.png"):
        assert (out / "report" / figure).stat().st_size > 1000
    assert (out / "synth" / "styled_sunset.png").is_file() and (out / "synth" / "styled_day.png").is_file()

    said.clear()
    run_demo(out, TINY_DEMO, said.append)  # everything done: every step is skipped
    assert len(said) == 6 and all("skipped" in line for line in said)

    with pytest.raises(SpadekitError, match="other settings"):
        run_demo(out, DemoSettings(minutes=1), said.append)


def test_an_unfinished_step_is_run_again_and_later_ones_follow(finished_demo, tmp_path):
    out = Path(shutil.copytree(finished_demo[0], tmp_path / "demo"))  # a demo run to the end, as run_demo leaves it
    state = json.loads((out / "demo.json").read_text())
    for step in ("synth", "report"):
        del state["steps"][step]
    (out / "demo.json").write_text(json.dumps(state))
    (out / "report.html").unlink()
    said: list[str] = []
    run_demo(out, TINY_DEMO, said.append)
    assert [("skipped" in line) for line in said] == [True, True, True, True, False, False]
    assert (out / "report.html").is_file()


def test_a_non_empty_folder_without_a_demo_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SpadekitError, match="not empty"):
        run_demo(tmp_path, TINY_DEMO, lambda line: None)
