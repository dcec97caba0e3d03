"""`spadekit serve`: the API on a real server over loopback, a short load test, and the page end to end in a
headless Chromium (Debian's chromium package, driven by Playwright).

Without a Chromium the browser test skips, unless SPADEKIT_REQUIRE_BROWSER=1 (set by .ci/run, which installs
one): then it fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.data.palette import colourize
from spadekit.data.reader import SplitReader
from spadekit.serve import drive
from spadekit.serve.loadtest import post, run_load, stripes_mask

MAX_UPLOAD = 200_000


@pytest.fixture(scope="module")
def server(toy_shards, tiny_run) -> str:
    """The session's tiny VAE run (2 steps; serving only reads it) on a free loopback port; its base URL."""
    from spadekit.serve.app import create_app
    from spadekit.synthesis import Synthesizer

    engine = Synthesizer.load(tiny_run, precision="fp32")
    with torch.no_grad():  # 2 steps from the official init (gain 0.02) paint ~1e-4: scale to span the range
        semantics = engine.semantics([SplitReader(toy_shards, "val").read(0).label], [None])
        generator = engine.generator
        generator.conv_img.weight *= 0.7 / generator(semantics, torch.zeros(1, generator.z_dim)).std()
    with serving(create_app(engine, max_upload_bytes=MAX_UPLOAD)) as base:
        yield base


@contextlib.contextmanager
def serving(app):
    """`app` on a free loopback port in a background thread; its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not uv.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert uv.started, "the server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def label(toy_shards) -> np.ndarray:
    return SplitReader(toy_shards, "val").read(0).label


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.load(reply)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _colour_mask(label: np.ndarray, server: str) -> np.ndarray:
    from spadekit.run_info import RunInfo

    run = Path(_get(f"{server}/health")["run"])
    return colourize(label, RunInfo.load(run).facts)


def test_palette_and_health(server):
    palette = _get(f"{server}/palette")
    assert palette["dataset"] == "toyscapes" and (palette["width"], palette["height"]) == (64, 64)
    assert palette["classes"][0] == {"id": 0, "name": "sky", "colour": [70, 130, 180]}
    assert palette["style"] is True and palette["samples"] is True
    health = _get(f"{server}/health")
    assert health["status"] == "ok" and health["precision"] == "fp32" and health["generator"] == "spade"


def test_colour_and_index_masks_give_the_same_png_and_seeds_matter(server, label):
    status, colour = post(f"{server}/synthesize", {"mask": ("m.png", _png(_colour_mask(label, server))),
                                                   "seed": "5"})
    assert status == 200 and Image.open(io.BytesIO(colour)).size == (64, 64)
    status, index = post(f"{server}/synthesize", {"mask": ("m.png", _png(label)), "seed": "5"})
    assert status == 200 and index == colour
    _, other = post(f"{server}/synthesize", {"mask": ("m.png", _png(label)), "seed": "6"})
    assert other != colour


@pytest.mark.parametrize("case, status, words", [
    ("jpeg", 415, "not a PNG"),
    ("size", 422, "32x32; this model paints 64x64"),
    ("colour", 422, "(1, 2, 3) in 15 pixels"),
    ("big", 413, "limit"),
    ("no mask", 400, "no file field 'mask'"),
    ("seed", 400, "not an integer"),
    ("style", 415, "style photo cannot be decoded"),
    ("huge style", 413, "megapixels"),
])
def test_bad_requests_get_a_4xx_and_one_sentence(server, label, case, status, words):
    good = _png(label)
    rgb = _colour_mask(label, server).copy()
    rgb[:3, :5] = (1, 2, 3)
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG")
    fields = {  # built only for the case at hand
        "jpeg": lambda: {"mask": ("m.jpg", jpeg.getvalue())},
        "size": lambda: {"mask": ("m.png", _png(label[:32, :32]))},
        "colour": lambda: {"mask": ("m.png", _png(rgb))},
        "big": lambda: {"mask": ("m.png", good), "style": ("s.png", os.urandom(MAX_UPLOAD + 10))},
        "no mask": lambda: {"seed": "1"},
        "seed": lambda: {"mask": ("m.png", good), "seed": "abc"},
        "style": lambda: {"mask": ("m.png", good), "style": ("s.jpg", b"not an image")},
        "huge style": lambda: {"mask": ("m.png", good), "style": ("s.png", _png(np.zeros((6000, 8000), np.uint8)))},
    }[case]()
    got, body = post(f"{server}/synthesize", fields)
    assert got == status and words in json.loads(body)["detail"]


def test_concurrent_clients_queue_and_none_fails(server):
    report = run_load(server, stripes_mask(server), clients=4, seconds=3)
    assert report["requests"] >= 4 and report["failures"] == 0, report["first_failure"]
    assert report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]


def test_the_page_paints_in_a_real_browser(server, tmp_path, toy_shards):
    sync_api = pytest.importorskip("playwright.sync_api")
    if drive.chromium_path() is None:
        if os.environ.get("SPADEKIT_REQUIRE_BROWSER"):
            pytest.fail("SPADEKIT_REQUIRE_BROWSER is set but no Chromium was found (apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    photo = tmp_path / "style.png"
    Image.fromarray(SplitReader(toy_shards, "val").read(3).image).resize((100, 37)).save(photo)
    with sync_api.sync_playwright() as playwright:
        browser = drive.launch(playwright)
        page = browser.new_page(viewport={"width": 1320, "height": 720})
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(server)
        drive.wait_for_result(page, 0)  # the blank canvas is painted on load
        drive.set_brush(page, 24)
        drive.pick_class(page, 6)  # grass, the lower half
        drive.stroke(page, [(0.0, 0.75), (1.0, 0.75)])
        first = drive.result_png(page)
        drive.pick_class(page, 7)  # tree, a band across the upper half
        drive.stroke(page, [(0.0, 0.3), (1.0, 0.3)])
        counts = drive.mask_class_counts(page)
        assert counts.get(6, 0) > 500 and counts.get(7, 0) > 500 and counts.get(0, 0) > 100, counts
        second = drive.result_png(page)
        assert second != first  # the strokes changed the result
        drive.upload_style(page, photo)
        styled = drive.result_png(page)
        assert styled != second  # so did the style photo
        before = drive.version(page)
        page.keyboard.press("r")  # a new random style
        drive.wait_for_result(page, before)
        assert drive.result_png(page) != styled
        page.keyboard.press("Control+z")  # undo the tree band
        drive.wait_for_result(page, before + 1)
        assert drive.mask_class_counts(page).get(7, 0) == 0
        assert Image.open(io.BytesIO(drive.result_png(page))).size == (64, 64)
        browser.close()
    assert not errors, errors


def test_an_imported_official_model_is_served(tmp_path):
    """A checkpoint laid out as NVlabs' (label-map input, no encoder), imported, then served."""
    from spadekit.nvlabs.importer import import_nvlabs
    from spadekit.serve.app import create_app
    from spadekit.synthesis import Synthesizer
    from tests.test_nvlabs_import import NGF, TINY, TINY_NC, calibrate, official_g_layout, random_state, write_official

    g = calibrate(random_state(official_g_layout(TINY_NC, NGF), seed=1), TINY, 5)
    import_nvlabs(write_official(tmp_path / "ckpt", G=g), TINY, tmp_path / "run")
    with serving(create_app(Synthesizer.load(tmp_path / "run", precision="fp32"))) as base:
        palette = _get(f"{base}/palette")
        assert [c["name"] for c in palette["classes"]] == ["sky", "sea", "rock", "tree", "sand"]
        assert palette["style"] is False and (palette["width"], palette["height"]) == (64, 64)
        label = np.zeros((64, 64), np.uint8)
        label[32:] = 1
        label[40:, :20] = 255  # the don't-care id
        status, body = post(f"{base}/synthesize", {"mask": ("m.png", _png(label))})
        assert status == 200 and Image.open(io.BytesIO(body)).size == (64, 64)
        status, body = post(f"{base}/synthesize", {"mask": ("m.png", _png(label)), "style": ("s.png", _png(label))})
        assert status == 422 and "no image encoder" in json.loads(body)["detail"]
