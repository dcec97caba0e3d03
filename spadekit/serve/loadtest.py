"""A load test of `spadekit serve`: N clients POST /synthesize back to back for a bounded time.

    python -m spadekit.serve.loadtest http://127.0.0.1:7860 --clients 8 --seconds 30 [--mask MASK.png]

Reports requests, failures (any status but 200, or a transport error) and latency percentiles in ms. Without
--mask, the mask is stripes of the run's first classes at the model's size (from GET /palette).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image


def multipart(fields: dict[str, str | tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type: str values as fields, (filename, bytes) as files."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data = value
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n")
        else:
            head, data = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', value.encode()
        parts.append(f"--{boundary}\r\n{head}".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(url: str, fields: dict[str, str | tuple[str, bytes]], timeout: float = 120) -> tuple[int, bytes]:
    """POST a multipart form; (status, body) for any HTTP status."""
    body, content_type = multipart(fields)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def stripes_mask(base_url: str) -> bytes:
    """A PNG of horizontal stripes of the run's first (up to 4) classes' colours, at the model's size."""
    with urllib.request.urlopen(f"{base_url}/palette", timeout=30) as reply:
        info = json.load(reply)
    colours = [c["colour"] for c in info["classes"][:4]]
    rows = np.array(colours, np.uint8)[np.arange(info["height"]) * len(colours) // info["height"]]
    buffer = io.BytesIO()
    Image.fromarray(np.repeat(rows[:, None], info["width"], 1)).save(buffer, format="PNG")
    return buffer.getvalue()


def run_load(base_url: str, mask: bytes, clients: int, seconds: float) -> dict:
    """`clients` threads each sending requests back to back (seed = its request number) until `seconds` pass."""
    latencies: list[float] = []
    failures: list[str] = []
    guard = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        count = 0
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                status, body = post(f"{base_url}/synthesize", {"mask": ("mask.png", mask), "seed": str(count)})
                problem = None if status == 200 and body.startswith(b"\x89PNG") else f"HTTP {status}: {body[:200]!r}"
            except OSError as err:
                problem = f"{type(err).__name__}: {err}"
            with guard:
                if problem:
                    failures.append(problem)
                else:
                    latencies.append(time.perf_counter() - start)
            count += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    ms = sorted(x * 1000 for x in latencies)
    return {"clients": clients, "seconds": elapsed, "requests": len(ms) + len(failures), "failures": len(failures),
            "first_failure": failures[0] if failures else None, "requests_per_s": len(ms) / elapsed,
            **{f"p{q}_ms": _percentile(ms, q) for q in (50, 90, 99)}, "max_ms": ms[-1] if ms else None,
            "mean_ms": statistics.fmean(ms) if ms else None}


def _percentile(sorted_ms: list[float], q: int) -> float | None:
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, round(q / 100 * (len(sorted_ms) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the server, e.g. http://127.0.0.1:7860")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--mask", help="a mask PNG at the model's size [default: stripes of the palette]")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    mask = Path(args.mask).read_bytes() if args.mask else stripes_mask(base)
    print(json.dumps(run_load(base, mask, args.clients, args.seconds), indent=2))


if __name__ == "__main__":
    main()
