"""Procedural "toyscapes" landscapes: image, class labels, instance ids and a global style.

Pure vectorised numpy (no torch), so the dataset renders anywhere, fast, with no download.
An image depends only on (seed, split, index, size); the layout is drawn from size-independent
random grids, so the same key at two sizes shows the same scene at two resolutions.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from itertools import islice

import numpy as np

CLASS_NAMES: list[str] = ["sky", "cloud", "mountain", "snow", "water", "sand", "grass", "tree", "rock"]
SKY, CLOUD, MOUNTAIN, SNOW, WATER, SAND, GRASS, TREE, ROCK = range(len(CLASS_NAMES))
PALETTE: list[tuple[int, int, int]] = [
    (70, 130, 180), (220, 220, 220), (120, 80, 140), (255, 255, 255), (0, 60, 200),
    (230, 200, 120), (60, 170, 60), (0, 90, 0), (110, 110, 110),
]
THING_IDS: list[int] = [TREE, ROCK]
STYLE_NAMES: list[str] = ["day", "sunset", "night", "autumn", "winter"]
MIN_SIZE, MAX_SIZE = 64, 512

# Each class blends two colours by its texture value t in [0, 1] (dark end, bright end).
_BASE_COLOURS = {
    SKY: ((0.22, 0.42, 0.85), (0.68, 0.82, 0.96)),
    CLOUD: ((0.72, 0.74, 0.80), (1.00, 1.00, 1.00)),
    MOUNTAIN: ((0.25, 0.22, 0.34), (0.55, 0.48, 0.62)),
    SNOW: ((0.80, 0.85, 0.95), (1.00, 1.00, 1.00)),
    WATER: ((0.03, 0.18, 0.42), (0.30, 0.55, 0.85)),
    SAND: ((0.62, 0.52, 0.32), (0.98, 0.88, 0.62)),
    GRASS: ((0.12, 0.35, 0.06), (0.45, 0.78, 0.22)),
    TREE: ((0.01, 0.10, 0.03), (0.12, 0.38, 0.10)),
    ROCK: ((0.28, 0.28, 0.28), (0.62, 0.61, 0.58)),
}
# Per style: a global RGB multiplier plus colour overrides for the classes the style really changes.
_STYLES = {
    "day": ((1.0, 1.0, 1.0), {}),
    "sunset": ((1.15, 0.80, 0.70), {
        SKY: ((0.30, 0.18, 0.45), (1.00, 0.60, 0.30)),
        CLOUD: ((0.75, 0.40, 0.45), (1.00, 0.80, 0.60)),
        WATER: ((0.20, 0.10, 0.30), (0.85, 0.50, 0.35)),
    }),
    "night": ((0.40, 0.45, 0.70), {
        SKY: ((0.00, 0.00, 0.05), (0.10, 0.14, 0.35)),
        CLOUD: ((0.35, 0.35, 0.45), (0.65, 0.65, 0.75)),
    }),
    "autumn": ((1.05, 0.95, 0.85), {
        GRASS: ((0.40, 0.30, 0.06), (0.80, 0.62, 0.20)),
        TREE: ((0.40, 0.08, 0.01), (0.90, 0.45, 0.05)),
    }),
    "winter": ((0.92, 0.98, 1.08), {
        SKY: ((0.55, 0.60, 0.68), (0.85, 0.87, 0.90)),
        GRASS: ((0.45, 0.52, 0.50), (0.85, 0.90, 0.92)),
        TREE: ((0.02, 0.10, 0.08), (0.18, 0.30, 0.26)),
        WATER: ((0.25, 0.35, 0.48), (0.65, 0.75, 0.85)),
    }),
}


@dataclass
class Rendered:
    image: np.ndarray  # uint8 HxWx3 RGB
    label: np.ndarray  # uint8 HxW class ids
    instance: np.ndarray  # int32 HxW: stuff -> class id, things -> class_id * 1000 + k
    style: int  # index into STYLE_NAMES


def _lerp(a: np.ndarray, pos: np.ndarray, axis: int) -> np.ndarray:
    """Linearly interpolate `a` along `axis` at fractional node positions `pos`."""
    i0 = np.minimum(pos.astype(np.int64), a.shape[axis] - 2)
    f = (pos - i0).astype(np.float32).reshape((-1, 1) if axis == 0 else (1, -1))
    lo = np.take(a, i0, axis)
    return lo + (np.take(a, i0 + 1, axis) - lo) * f


def _upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of a node grid to h x w pixel centres (separable: rows first, then columns).

    Gathers + lerps rather than interpolation-matrix matmuls: BLAS spawns threads that fight with
    torch's and other workers' and made renders ~10x slower on a loaded machine.
    """
    cy, cx = grid.shape[0] - 1, grid.shape[1] - 1
    rows = _lerp(grid, (np.arange(h, dtype=np.float32) + 0.5) * (cy / h), 0)
    return _lerp(rows, (np.arange(w, dtype=np.float32) + 0.5) * (cx / w), 1)


def value_noise(rng: np.random.Generator, h: int, w: int, cells_y: int, cells_x: int) -> np.ndarray:
    """Random (cells_y+1)x(cells_x+1) grid in [0, 1) upsampled bilinearly to h x w (float32)."""
    return _upsample(rng.random((cells_y + 1, cells_x + 1), dtype=np.float32), h, w)


def fractal_noise(rng, h: int, w: int, cells_y: int, cells_x: int, octaves: int = 4) -> np.ndarray:
    """Sum of octaves (double frequency, half amplitude), renormalised to a ~[0, 1] range around 0.5.

    Octaves are summed on the finest grid (coarse nodes align with fine ones, so this is exactly the
    sum of bilinear upsamplings) and only the total is upsampled: one full-resolution pass, not one
    per octave.
    """
    fy, fx = cells_y << (octaves - 1), cells_x << (octaves - 1)
    total = np.zeros((fy + 1, fx + 1), dtype=np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        grid = rng.random(((cells_y << o) + 1, (cells_x << o) + 1), dtype=np.float32)
        step = float(1 << (octaves - 1 - o))
        total += amp * _lerp(_lerp(grid, np.arange(fy + 1) / step, 0), np.arange(fx + 1) / step, 1)
        norm += amp
        amp *= 0.5
    # Averaging octaves shrinks the spread; stretch it back so thresholds behave like on plain noise.
    return np.clip(0.5 + (_upsample(total, h, w) / norm - 0.5) * 1.6, 0.0, 1.0)


def _stuff_layout(rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict]:
    """Sky / mountain / ground / lake / clouds. Grid sizes are fixed so draws do not depend on n."""
    y = ((np.arange(n, dtype=np.float32) + 0.5) / n)[:, None]
    x = ((np.arange(n, dtype=np.float32) + 0.5) / n)[None, :]
    horizon = rng.uniform(0.40, 0.62)
    ground = horizon + 0.04 * (fractal_noise(rng, 1, n, 1, 2, 3)[0] - 0.5)
    ridge_raw = fractal_noise(rng, 1, n, 1, 3, 5)[0]
    ridge01 = (ridge_raw - ridge_raw.min()) / (np.ptp(ridge_raw) + 1e-6)
    mountain_h = rng.uniform(0.15, 0.4) if rng.random() < 0.9 else 0.0
    ridge = ground - mountain_h * (0.1 + 0.9 * ridge01)
    snow_line = ground - mountain_h * rng.uniform(0.55, 0.8)
    snow_wobble = 0.03 * (fractal_noise(rng, n, n, 4, 4, 3) - 0.5)
    label = np.full((n, n), GRASS, dtype=np.uint8)
    label[y < ground] = MOUNTAIN
    label[(y < ground) & (y < snow_line + snow_wobble)] = SNOW
    sky = y < ridge
    label[sky] = SKY
    # Clouds: thresholded wide noise, denser towards the top of the sky.
    cloud_noise = fractal_noise(rng, n, n, 3, 5, 6)
    cover = rng.uniform(-0.25, 0.15)
    cloud_field = cloud_noise + cover + 0.15 * (1.0 - y / horizon)
    label[sky & (cloud_field > 0.75)] = CLOUD
    # Optional lake: a noisy ellipse below the ground line, ringed by a sandy shore.
    edge = fractal_noise(rng, n, n, 4, 4, 5)
    cx, rx, ry = rng.uniform(0.15, 0.85), rng.uniform(0.22, 0.5), rng.uniform(0.07, 0.16)
    cy, shore = horizon + ry * rng.uniform(0.2, 1.6), rng.uniform(1.4, 2.0)
    if rng.random() < 0.7:
        f = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + 0.8 * (edge - 0.5)
        below = y >= ground
        label[below & (f < shore)] = SAND
        label[below & (f < 1.0)] = WATER
    return label, {"horizon": horizon, "cloud_field": cloud_field, "edge": edge}


def _blob_mask(n, cx, cy, rx, ry, noise, jag):
    """Noisy-edged ellipse restricted to its bounding box; returns (slices, mask) or None if off-image."""
    y0, y1 = max(0, int((cy - 1.5 * ry) * n)), min(n, int((cy + 1.5 * ry) * n) + 1)
    x0, x1 = max(0, int((cx - 1.5 * rx) * n)), min(n, int((cx + 1.5 * rx) * n) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    yy = ((np.arange(y0, y1, dtype=np.float32) + 0.5) / n)[:, None]
    xx = ((np.arange(x0, x1, dtype=np.float32) + 0.5) / n)[None, :]
    f = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 + jag * (noise[y0:y1, x0:x1] - 0.5)
    return (slice(y0, y1), slice(x0, x1)), f < 1.0


def _paint_things(rng, label: np.ndarray, info: dict) -> tuple[np.ndarray, np.ndarray]:
    """Trees and rocks on the ground, painted back to front so nearer objects occlude farther ones."""
    n, horizon = label.shape[0], info["horizon"]
    instance = label.astype(np.int32)
    trunk = np.zeros_like(label, dtype=bool)
    kinds = [TREE] * int(rng.integers(2, 7)) + [ROCK] * int(rng.integers(1, 5))
    objs = [(rng.uniform(horizon + 0.04, 1.02), rng.uniform(0, 1), k, rng.uniform(0, 1, 3)) for k in kinds]
    counters = {TREE: 0, ROCK: 0}
    for by, bx, kind, u in sorted(objs, key=lambda o: o[0]):
        if label[min(n - 1, int(by * n)), min(n - 1, int(bx * n))] == WATER:
            continue  # nothing stands in the lake
        near = 0.6 + 0.8 * (by - horizon) / (1.0 - horizon)  # perspective: nearer is bigger
        counters[kind] += 1
        inst_id = kind * 1000 + counters[kind]
        if kind == TREE:
            rx = near * (0.06 + 0.05 * u[0])
            ry = rx * (1.1 + 0.5 * u[1])
            th, tw = ry * (0.5 + 0.4 * u[2]), max(rx * 0.28, 1.5 / n)
            box = (slice(max(0, int((by - th - ry * 0.5) * n)), min(n, int(by * n) + 1)),
                   slice(max(0, int((bx - tw / 2) * n)), min(n, int((bx + tw / 2) * n) + 1)))
            label[box], instance[box], trunk[box] = TREE, inst_id, True
            blob = _blob_mask(n, bx, by - th - ry, rx, ry, info["edge"], 1.0)
        else:
            rx = near * (0.05 + 0.05 * u[0])
            ry = rx * (0.55 + 0.3 * u[1])
            blob = _blob_mask(n, bx, by - ry * 0.8, rx, ry, info["edge"], 0.6)
        if blob is not None:
            sl, m = blob
            label[sl][m], instance[sl][m], trunk[sl][m] = kind, inst_id, False
    return instance, trunk


def _cells(n: int, period_px: float) -> int:
    return max(1, int(round(n / period_px)))


def _texture(kind: int, rng, n: int, info: dict) -> np.ndarray:
    """Texture value t in [0, 1] for one class over the whole image (masked by the caller).

    Periods are in pixels and grow like sqrt(size), so a texture stays visible at 64 px (near pixel
    level) without turning into smooth mush at 512 px.
    """
    s = (n / 128) ** 0.5
    y = ((np.arange(n, dtype=np.float32) + 0.5) / n)[:, None]
    x = ((np.arange(n, dtype=np.float32) + 0.5) / n)[None, :]
    if kind == SKY:  # smooth vertical gradient, darker overhead
        return np.broadcast_to(np.clip(y / info["horizon"], 0, 1), (n, n))
    if kind == CLOUD:  # soft bright puffs: brighter deeper inside the cloud field
        return np.clip((info["cloud_field"] - 0.75) * 2.5 + 0.25 + 0.5 * (value_noise(
            rng, n, n, _cells(n, 6 * s), _cells(n, 6 * s)) - 0.5), 0, 1)
    if kind == MOUNTAIN:  # tilted strata bent by noise, roughened by ridged noise
        slope = rng.uniform(-0.6, 0.6)
        bend = fractal_noise(rng, n, n, _cells(n, 24 * s), _cells(n, 24 * s), 3)
        strata = 0.5 + 0.5 * np.sin(2 * np.pi * (y + slope * x) * n / (6 * s) + 6 * bend)
        ridged = 1 - np.abs(2 * fractal_noise(rng, n, n, _cells(n, 12 * s), _cells(n, 12 * s), 2) - 1)
        return 0.6 * strata + 0.4 * ridged
    if kind == SNOW:  # nearly flat, bright, faint large-scale shading
        return 0.6 + 0.4 * value_noise(rng, n, n, _cells(n, 20 * s), _cells(n, 20 * s))
    if kind == WATER:  # horizontal ripples whose phase wanders along wide, flat streaks
        phase = value_noise(rng, n, n, _cells(n, 3 * s), _cells(n, 30 * s))
        return 0.5 + 0.5 * np.sin(2 * np.pi * y * n / (4 * s) + 8 * phase)
    if kind == SAND:  # per-pixel speckle over gentle dunes
        return 0.6 * rng.random((n, n), dtype=np.float32) + 0.4 * value_noise(rng, n, n, 4, 4)
    if kind == GRASS:  # vertical blades: narrow in x, tall in y
        blades = value_noise(rng, n, n, _cells(n, 10 * s), _cells(n, 1.5 * s))
        return 0.8 * blades + 0.2 * value_noise(rng, n, n, 6, 6)
    if kind == TREE:  # leafy clumps: mid-frequency noise pushed towards dark/bright
        leaves = value_noise(rng, n, n, _cells(n, 4 * s), _cells(n, 4 * s))
        leaves += 0.5 * value_noise(rng, n, n, _cells(n, 2 * s), _cells(n, 2 * s))
        return np.clip((leaves / 1.5 - 0.5) * 3 + 0.5, 0, 1)
    # ROCK: mottled grey with dark cracks along the level set of a second noise
    base = fractal_noise(rng, n, n, _cells(n, 16 * s), _cells(n, 16 * s), 3)
    crack = np.abs(fractal_noise(rng, n, n, _cells(n, 24 * s), _cells(n, 24 * s), 2) - 0.5) < 0.04
    return np.where(crack, 0.0, 0.35 + 0.65 * base)


def _colourise(label, t, trunk, style: int, gain: np.ndarray) -> np.ndarray:
    """Blend each class's two style colours by t, brown trunks, then apply the global style gain."""
    tint, overrides = _STYLES[STYLE_NAMES[style]]
    cols = {**_BASE_COLOURS, **overrides}
    lo = np.array([cols[c][0] for c in range(len(CLASS_NAMES))], dtype=np.float32)
    hi = np.array([cols[c][1] for c in range(len(CLASS_NAMES))], dtype=np.float32)
    img = lo[label] + (hi - lo)[label] * t[..., None]
    bark = np.array([0.30, 0.20, 0.10], dtype=np.float32)
    img[trunk] = bark * (0.5 + 0.5 * t[trunk][:, None])
    img *= np.asarray(tint, dtype=np.float32) * gain
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def render(seed: int, split: str, index: int, size: int) -> Rendered:
    """Render toyscapes image `index` of `split` for `seed` at size x size pixels (64..512)."""
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ValueError(f"toyscapes size must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    size = int(size)
    # crc32, not hash(): python salts str hashes per process, which would break reproducibility.
    ss = np.random.SeedSequence([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])
    layout_ss, texture_ss = ss.spawn(2)
    rng = np.random.default_rng(layout_ss)
    style = int(rng.integers(len(STYLE_NAMES)))
    # Continuous jitter: overall brightness times a small per-channel tint.
    gain = (rng.uniform(0.85, 1.15) * rng.uniform(0.93, 1.07, 3)).astype(np.float32)
    label, info = _stuff_layout(rng, size)
    instance, trunk = _paint_things(rng, label, info)
    # One child stream per class: a class's texture does not depend on which other classes are present.
    tex_rngs = [np.random.default_rng(s) for s in texture_ss.spawn(len(CLASS_NAMES))]
    t = np.zeros((size, size), dtype=np.float32)
    for c in np.unique(label):
        m = label == c
        t[m] = _texture(int(c), tex_rngs[c], size, info)[m]
    image = _colourise(label, t, trunk, style, gain)
    return Rendered(image=image, label=label, instance=instance, style=style)


def style_photos(style: str, count: int, seed: int, size: int, limit: int = 500) -> list[np.ndarray]:
    """The first `count` images of `style` (a STYLE_NAMES entry) among the `limit` first val images of `seed`."""
    scenes = (render(seed, "val", i, size) for i in range(limit))
    photos = list(islice((scene.image for scene in scenes if STYLE_NAMES[scene.style] == style), count))
    if len(photos) < count:
        raise ValueError(f"only {len(photos)} {style!r} images among the first {limit} of seed {seed}")
    return photos
