"""The painting page's web app: one page and a small API around a `Synthesizer` (FastAPI).

- `GET /` the page (`page.html`: canvas, palette, brushes, style photo, result);
- `GET /palette` the run's classes (id, name, colour), the mask size and whether it takes a style photo;
- `GET /health` the run, its checkpoint, device and precision;
- `POST /synthesize` multipart form: `mask` (a PNG at the model's size, colour-coded in the palette or holding class
  ids), optional `style` (a photo, any size), `seed` (an integer: the latent's draw when there is no style photo)
  and, for a generator with a latent per pixel (OASIS), `regions` ("CLASS:SEED,..."): each class's pixels get the
  latent of their own seed (local resampling), the rest keeps `seed`'s. Answers the image as PNG, its time in the
  `X-Synth-Ms` header.

The model is loaded once. One lock serializes the generator: concurrent requests queue, none fails for being
concurrent. Bad requests get a 4xx and a one-sentence `detail`: 400 malformed form, 413 upload over
`max_upload_bytes` or a style photo over MAX_STYLE_PIXELS, 415 not a PNG / not an image, 422 wrong size, colours or
ids outside the palette. Sizes are checked on the image header, before any pixel is decoded. Request bodies are
capped while they stream in (`BodyLimit`), whether they declare a Content-Length or come chunked: over the cap the
answer is 413 at once, before the form parser spools the rest to disk.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from PIL import Image, UnidentifiedImageError

from spadekit.errors import SpadekitError
from spadekit.masks import MAX_STYLE_PIXELS, mask_ids
from spadekit.synthesis import Synthesizer, seeded

PAGE = Path(__file__).with_name("page.html")
MAX_UPLOAD_BYTES = 8 << 20  # per file; a 4096x4096 PNG mask compresses far below this
FORM_OVERHEAD = 65536  # multipart boundaries, headers and the seed field around the two files


class BodyTooLarge(Exception):
    """Raised into the app by `BodyLimit`'s receive when the body passes the cap; the app's answer is dropped."""


class BodyLimit:
    """ASGI middleware: counts the bytes of each request body as they arrive and answers 413 (Connection: close)
    as soon as they pass `limit`. A Content-Length over it is refused before any byte is read; a chunked body,
    which declares none, is cut off when the count passes it, so no request makes the server read or spool more
    than `limit` bytes."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, f"The request body is {int(declared)} bytes")
        state = {"received": 0, "over": False, "started": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.limit:
                    state["over"] = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message):
            if state["over"]:
                return  # the app's answer to BodyTooLarge (a 400 or 500) is replaced by the 413 below
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:  # BodyTooLarge, or whatever the app made of it: the answer is the 413
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await self._refuse(send, f"The request body passed {self.limit} bytes")

    async def _refuse(self, send, what: str) -> None:
        body = json.dumps({"detail": f"{what}; the limit is {self.limit} bytes, files of at most "
                                     f"{(self.limit - FORM_OVERHEAD) // 2} bytes each."}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(engine: Synthesizer, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    app = FastAPI(title="spadekit serve", docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limit=2 * max_upload_bytes + FORM_OVERHEAD)
    lock = threading.Lock()
    facts = engine.info.facts
    height, width = engine.size

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "run": str(engine.run.run_dir), "checkpoint": engine.run.checkpoint.name,
                "generator": engine.info.generator, "device": str(engine.device), "precision": engine.precision}

    @app.get("/palette")
    def palette() -> dict:
        classes = [{"id": i, "name": name, "colour": list(colour)}
                   for i, (name, colour) in enumerate(zip(facts.class_names, facts.palette, strict=True))]
        return {"dataset": facts.name, "classes": classes, "width": width, "height": height,
                "style": engine.encodes_style, "samples": engine.takes_latent, "run": engine.run.run_dir.name,
                "local_resampling": engine.takes_spatial_latent}

    @app.post("/synthesize")
    async def synthesize(request: Request) -> Response:
        try:
            form = await request.form(max_files=2, max_fields=5)
        except BodyTooLarge:
            raise
        except Exception as err:  # noqa: BLE001 - any parse failure of the body is the client's
            raise HTTPException(400, f"The request body is not a multipart form ({err}).") from None
        mask = await _file_bytes(form, "mask", max_upload_bytes, required=True)
        style = await _file_bytes(form, "style", max_upload_bytes, required=False)
        seed = _seed(form.get("seed"))
        regions = _regions(form.get("regions"), engine)
        labels = _labels(mask, engine, width, height)
        photo = _photo(style) if style is not None else None
        if photo is not None and not engine.encodes_style:
            raise HTTPException(422, "This run's generator has no image encoder, so it cannot take a style photo.")
        start = time.perf_counter()
        png = await run_in_threadpool(_paint, engine, lock, labels, photo, seed, regions)
        return Response(png, media_type="image/png",
                        headers={"X-Synth-Ms": f"{(time.perf_counter() - start) * 1000:.1f}"})

    return app


async def _file_bytes(form, field: str, limit: int, required: bool) -> bytes | None:
    upload = form.get(field)
    if upload is None or isinstance(upload, str):
        if required:
            raise HTTPException(400, f"The form has no file field {field!r}; send the mask as a PNG file.")
        return None
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"The {field} upload is over the {limit}-byte limit; send a smaller file.")
    return data


def _seed(value) -> int:
    if value is None or value == "":
        return 0
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise HTTPException(400, f"seed {value!r} is not an integer.") from None
    if not 0 <= seed < 2**63:
        raise HTTPException(400, f"seed {seed} is outside 0..2**63-1.")
    return seed


def _regions(value, engine: Synthesizer) -> list[tuple[int, int]]:
    """`regions` = "CLASS:SEED,...": (class id, seed) pairs, for a generator with a latent per pixel."""
    if value is None or value == "":
        return []
    if not engine.takes_spatial_latent:
        raise HTTPException(422, "This run's generator takes one latent per image, so it cannot resample one region.")
    pairs = []
    for item in str(value).split(","):
        cls, _, seed = item.partition(":")
        if not cls.strip().isdigit() or int(cls) >= engine.info.facts.label_nc:
            raise HTTPException(400, f"regions item {item!r} does not start with a class id of this run.")
        pairs.append((int(cls), _seed(seed)))
    return pairs


def _labels(data: bytes, engine: Synthesizer, width: int, height: int) -> np.ndarray:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise HTTPException(415, "The mask is not a PNG; send the canvas as PNG (colours of the palette or class ids).")
    image = _open_image(data, "The mask PNG")
    if image.size != (width, height):  # checked on the header, before decoding the pixels
        raise HTTPException(422, f"The mask is {image.width}x{image.height}; this model paints {width}x{height} "
                              "masks (GET /palette gives the size).")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise HTTPException(415, f"The mask PNG cannot be decoded ({err}).") from None
    try:
        return mask_ids(image, engine.info.facts, "The mask")
    except SpadekitError as err:
        raise HTTPException(422, str(err)) from None


def _photo(data: bytes) -> np.ndarray:
    image = _open_image(data, "The style photo")
    if image.width * image.height > MAX_STYLE_PIXELS:
        raise HTTPException(413, f"The style photo is {image.width}x{image.height}; send one of at most "
                              f"{MAX_STYLE_PIXELS // 1_000_000} megapixels (it is resized to 256x256 anyway).")
    try:
        return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise HTTPException(415, f"The style photo cannot be decoded as an image ({err}).") from None


def _open_image(data: bytes, what: str) -> Image.Image:
    """The image's header (size, mode) without its pixels; a 415 when it is no image."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise HTTPException(413, f"{what} declares over {Image.MAX_IMAGE_PIXELS * 2 // 1_000_000} megapixels; send a "
                              "smaller image.") from None
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
        raise HTTPException(415, f"{what} cannot be decoded as an image ({err}).") from None


def _paint(engine: Synthesizer, lock: threading.Lock, labels: np.ndarray, photo: np.ndarray | None,
           seed: int, regions: list[tuple[int, int]]) -> bytes:
    """One image, with the generator to itself: requests queue on `lock`."""
    with lock:
        style = engine.encode_style(photo) if photo is not None else None
        if regions:
            base = engine.latents(1, style, seeded(seed))[0]
            own = [(labels == cls, engine.latents(1, style, seeded(s))[0]) for cls, s in regions]
            semantics = engine.semantics([labels], [None])
            image = engine.paint(semantics, engine.latent_map(base, own)[None])[0]
        else:
            image = engine.paint_maps([labels], [None], 1, style, seeded(seed))[0]
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()
