"""Drive the painting page in a real browser (Playwright with a system Chromium): for the end-to-end test and
for screenshots. Nothing here is needed to serve the page.

    python -m spadekit.serve.drive http://127.0.0.1:7860 shot.png [--style PHOTO]

paints a small landscape with the run's first classes, optionally uploads a style photo, and saves a
screenshot of the page with its result.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    """A Chromium-family browser on PATH ($SPADEKIT_CHROMIUM first), or None."""
    given = os.environ.get("SPADEKIT_CHROMIUM")
    if given:
        return given
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def launch(playwright):
    """A headless Chromium from this machine (Playwright's own browser download is not needed)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("No Chromium found; install Debian's `chromium` package or set SPADEKIT_CHROMIUM.")
    return playwright.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])


def version(page) -> int:
    """How many results the page has shown."""
    return int(page.get_attribute("#result", "data-version"))


def wait_for_result(page, after: int, timeout_ms: float = 60_000) -> int:
    """Wait until the page shows a result newer than `after`; its version."""
    page.wait_for_function("v => Number(document.getElementById('result').dataset.version) > v", arg=after,
                           timeout=timeout_ms)
    page.wait_for_function("() => !document.getElementById('status').classList.contains('error')", timeout=1000)
    return version(page)


def result_png(page) -> bytes:
    """The PNG bytes the page shows as its result."""
    encoded = page.evaluate("""async () => {
        const blob = await (await fetch(document.getElementById('result').src)).blob();
        const bytes = new Uint8Array(await blob.arrayBuffer());
        let text = ''; for (const b of bytes) text += String.fromCharCode(b);
        return btoa(text);
    }""")
    return base64.b64decode(encoded)


def pick_class(page, class_id: int) -> None:
    page.click(f"#palette button[data-id='{class_id}']")


def set_brush(page, size: int) -> None:
    page.eval_on_selector("#size", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", size)


def stroke(page, points: list[tuple[float, float]]) -> int:
    """Drag the brush through `points` (fractions of the canvas' width and height); the new result's version."""
    before = version(page)
    box = page.locator("#mask").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    return wait_for_result(page, before)


def fill_at(page, fx: float, fy: float) -> int:
    """Flood-fill the region under (fx, fy) with the selected class; the new result's version."""
    before = version(page)
    page.click("#fill")
    box = page.locator("#mask").bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    page.click("#brush")
    return wait_for_result(page, before)


def upload_style(page, photo: Path) -> int:
    before = version(page)
    page.set_input_files("#style", str(photo))
    return wait_for_result(page, before)


def mask_class_counts(page) -> dict[int, int]:
    """Pixels per class id in the page's label canvas."""
    counts = page.evaluate("""() => {
        const c = document.getElementById('mask');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const out = {};
        for (let i = 0; i < px.length; i += 4) {
            const k = px[i] + ',' + px[i + 1] + ',' + px[i + 2];
            out[k] = (out[k] || 0) + 1;
        }
        return out;
    }""")
    palette = page.evaluate("() => fetch('palette').then(r => r.json())")["classes"]
    by_colour = {",".join(map(str, c["colour"])): c["id"] for c in palette}
    return {by_colour[k]: n for k, n in counts.items()}


def paint_landscape(page, classes: dict[str, int]) -> int:
    """Ground, sky, a mountain ridge, a cloud, a lake and trees, with the ids in `classes` (keys ground, sky,
    mountain, cloud, water, tree); the last result's version."""
    pick_class(page, classes["ground"])
    fill_at(page, 0.5, 0.5)
    set_brush(page, 40)
    pick_class(page, classes["sky"])
    for y in (0.1, 0.3):
        stroke(page, [(0.0, y), (1.0, y)])
    set_brush(page, 10)
    pick_class(page, classes["mountain"])
    stroke(page, [(0.0, 0.5), (0.2, 0.38), (0.4, 0.5), (0.65, 0.33), (1.0, 0.5)])
    pick_class(page, classes["cloud"])
    stroke(page, [(0.15, 0.15), (0.35, 0.15)])
    set_brush(page, 12)
    pick_class(page, classes["water"])
    stroke(page, [(0.45, 0.8), (0.85, 0.8)])
    set_brush(page, 9)
    pick_class(page, classes["tree"])
    stroke(page, [(0.12, 0.62), (0.12, 0.75)])
    return stroke(page, [(0.3, 0.6), (0.3, 0.72)])


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--style", type=Path)
    parser.add_argument("--classes", default="sky=0,cloud=1,mountain=2,ground=6,water=4,tree=7",
                        help="class ids of the landscape [default: toyscapes']")
    args = parser.parse_args()
    classes = {k: int(v) for k, v in (pair.split("=") for pair in args.classes.split(","))}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1320, "height": 720})
        page.goto(args.url)
        wait_for_result(page, 0)
        paint_landscape(page, classes)
        if args.style:
            upload_style(page, args.style)
        page.screenshot(path=str(args.out))
        browser.close()


if __name__ == "__main__":
    main()
