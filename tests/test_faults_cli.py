"""Failures a user can cause at the command line and the painting server: usage errors, unwritable outputs,
oversized images and uploads, a busy port. Each is one sentence (usage errors: click's usage paragraph) with
exit 1 (2 for usage), never a traceback unless --debug.

The CLI runs in-process through `spadekit.cli.main.run` (what the `spadekit` script calls), so a case costs
milliseconds; only the tests that need a model share one tiny run trained for 2 steps.
"""

from __future__ import annotations

import errno
import select
import shutil
import socket
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadekit.cli import main
from spadekit.imageio import save_png
from tests.test_serve import serving


def _cli(capsys, *args: str) -> tuple[int, str]:
    """(exit code, stderr) of `spadekit ARGS`, run in-process as the console script runs it."""
    capsys.readouterr()
    try:
        main.run(list(args))
        code = 0
    except SystemExit as done:
        code = done.code
    return code, capsys.readouterr().err


def _header_only_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG header declaring width x height pixels, with almost no data: a few hundred bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 2)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


# `tiny_run` (tests/conftest.py): a VAE SPADE run of 2 steps, shared by the session (the tests need its shape,
# not its quality).


# 1. usage errors: click's usage paragraph and exit 2, whichever click typer raises


@pytest.mark.parametrize("args, words", [
    (["prepare", "toyscapes", "--out", "shards", "--workers", "0"], "'--workers'"),
    (["data", "show", "shards", "--out", "grid.png", "--n", "0"], "'--n'"),
    (["bench", "run", "--num", "0"], "'--num'"),
    (["serve", "run", "--port", "70000"], "'--port'"),
    (["bench", "run", "--batch-size", "abc"], "'--batch-size'"),
    (["plugins", "--bogus"], "No such option: --bogus"),
    (["data", "show"], "Missing argument"),
    (["nosuchcommand"], "No such command"),
])
def test_usage_errors_are_the_usage_paragraph_and_exit_2(capsys, args, words):
    code, err = _cli(capsys, *args)
    assert code == 2 and "Traceback" not in err
    assert err.startswith("Usage: spadekit") and words in err and "Error:" in err


def test_usage_errors_of_the_standalone_click_package_are_caught_too(capsys, monkeypatch):
    """typer < 0.29 raises the `click` package's exceptions, not those of its vendored `typer._click`."""
    click = pytest.importorskip("click")

    def old_typer(**_):
        raise click.BadParameter("Input should be greater than or equal to 1", param_hint="'--n'")

    monkeypatch.setattr(main, "app", old_typer)
    code, err = _cli(capsys, "data", "show", "x", "--n", "0")
    assert code == 2 and "Invalid value for '--n'" in err and "Traceback" not in err


def test_ctrl_c_exits_130_not_0(capsys, monkeypatch):
    """typer turns KeyboardInterrupt into an Exit(130) that it returns outside standalone mode."""
    def interrupted():
        raise KeyboardInterrupt

    command = next(c for c in main.app.registered_commands if c.name == "plugins")
    monkeypatch.setattr(command, "callback", interrupted)
    code, err = _cli(capsys, "plugins")
    assert code == 130 and ("interrupted" in err or "aborted" in err) and "Traceback" not in err


# 2. unwritable outputs: one sentence naming the path, exit 1, checked before the work


def test_an_os_error_is_one_sentence_naming_the_path_and_debug_shows_it(capsys, monkeypatch):
    def disk_full(**_):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out.png")

    monkeypatch.setattr(main, "app", disk_full)
    code, err = _cli(capsys, "synth", "m.png")
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: /data/out.png: No space left on device; free some disk space")
    with pytest.raises(OSError, match="No space left"):
        main.run(["--debug", "synth", "m.png"])


@pytest.mark.parametrize("flag", ["--json", "--report"])
def test_bench_refuses_an_unwritable_output_before_scoring(capsys, tmp_path, flag):
    (tmp_path / "afile").write_text("x")
    code, err = _cli(capsys, "bench", str(tmp_path / "no-run"), flag, str(tmp_path / "afile" / "r.out"))
    assert code == 1 and "Traceback" not in err
    assert f"{flag} {tmp_path / 'afile' / 'r.out'} cannot be written: {tmp_path / 'afile'} is a file" in err


def test_bench_json_into_a_missing_folder_creates_it(capsys, tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")  # bench writes under the run; the session's is read-only
    out = tmp_path / "new" / "deeper" / "scores.json"
    code, err = _cli(capsys, "bench", str(run), "--num", "2", "--json", str(out), "--device", "cpu")
    assert code == 0, err
    assert '"runs"' in out.read_text()


@pytest.mark.parametrize("out, words", [
    ("afile/o.png", "afile is a file, not a folder"),  # a file where a folder is expected
    ("afile", "afile/m.png cannot be written: "),  # a folder of outputs, but the name is a file
    ("adir.png", "adir.png is a folder; name a file"),
])
def test_synth_refuses_an_unwritable_out_before_loading_the_model(capsys, tmp_path, monkeypatch, out, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.png").mkdir()
    save_png(tmp_path / "m.png", np.zeros((8, 8), np.uint8))
    mask = "masks" if out == "afile" else "m.png"
    if mask == "masks":
        save_png(tmp_path / "masks" / "m.png", np.zeros((8, 8), np.uint8))
    code, err = _cli(capsys, "synth", mask, "--run", "no-such-run", "--out", out)
    assert code == 1 and "Traceback" not in err and words in err and "no-such-run" not in err


# 4. images that declare a huge size: refused on the header, before decoding


@pytest.mark.parametrize("what, option, words", [
    ("mask", None, "Mask"),
    ("instance", "--instance", "Instance map"),
    ("style", "--style", "Style photo"),
])
@pytest.mark.parametrize("side", [30000, 12000])
def test_synth_refuses_huge_images_by_their_header(capsys, tiny_run, tmp_path, what, option, words, side):
    huge = _header_only_png(tmp_path / "huge.png", side, side)
    mask = huge if option is None else tmp_path / "m.png"
    save_png(tmp_path / "m.png", np.zeros((64, 64), np.uint8))
    extra = [option, str(huge)] if option else []
    code, err = _cli(capsys, "synth", str(mask), "--run", str(tiny_run), "--out", str(tmp_path / "o.png"), *extra)
    assert code == 1 and "Traceback" not in err
    assert f"{words} {huge}" in err and "megapixels" in err and not (tmp_path / "o.png").exists()


# 3. uploads: capped while they stream in, chunked or not


def _chunked_post(base: str, total: int, chunk: int = 1 << 16) -> tuple[int, int, bytes]:
    """POST /synthesize a multipart body of `total` bytes with Transfer-Encoding: chunked (no Content-Length),
    stopping as soon as an answer arrives; (bytes sent, seconds taken, the answer's first bytes)."""
    host, port = base.removeprefix("http://").split(":")
    boundary = "faultsboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"mask\"; filename=\"m.png\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    sent, start = 0, time.monotonic()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        sock.sendall(f"POST /synthesize HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
                     f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
        payload = head + b"\0" * (chunk - len(head))
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                sent += len(payload)
                payload = b"\0" * chunk
            if sent >= total:
                tail = f"\r\n--{boundary}--\r\n".encode()
                sock.sendall(f"{len(tail):x}\r\n".encode() + tail + b"\r\n0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _answer(sock)
    return sent, time.monotonic() - start, answer


def _answer(sock: socket.socket) -> bytes:
    """All the server says until it closes the connection (the 413 asks for the close)."""
    answer = b""
    try:
        while data := sock.recv(65536):
            answer += data
    except ConnectionResetError:
        pass
    return answer


class _Counting:
    """ASGI wrapper outside the app: how many body bytes the server handed to the app."""

    def __init__(self, app):
        self.app, self.received = app, 0

    async def __call__(self, scope, receive, send):
        async def counting_receive():
            message = await receive()
            self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counting_receive, send)


@pytest.fixture(scope="module")
def capped_server(tiny_run):
    from spadekit.serve.app import create_app
    from spadekit.synthesis import Synthesizer

    counting = _Counting(create_app(Synthesizer.load(tiny_run, precision="fp32"), max_upload_bytes=100_000))
    with serving(counting) as base:
        yield base, counting


def test_a_chunked_upload_over_the_cap_is_413_before_it_is_read(capped_server):
    base, counting = capped_server
    counting.received = 0
    sent, seconds, answer = _chunked_post(base, total=64 << 20)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    cap = 2 * 100_000 + 65536
    assert counting.received <= cap + (1 << 17), counting.received  # read no further than the cap
    assert sent < 32 << 20 and seconds < 20, (sent, seconds)


def test_a_declared_length_over_the_cap_is_413_without_reading(capped_server):
    base, counting = capped_server
    counting.received = 0
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /synthesize HTTP/1.1\r\nHost: {host}\r\nContent-Length: {1 << 30}\r\n"
                     "Content-Type: multipart/form-data; boundary=x\r\n\r\n".encode())
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b"limit" in answer and counting.received == 0


def test_a_style_photo_declaring_a_huge_size_is_413(capped_server, tmp_path):
    from spadekit.serve.loadtest import post
    from tests.test_serve import _png

    base, _ = capped_server
    huge = _header_only_png(tmp_path / "huge.png", 30000, 30000).read_bytes()
    status, body = post(f"{base}/synthesize", {"mask": ("m.png", _png(np.zeros((64, 64), np.uint8))),
                                               "style": ("s.png", huge)})
    assert status == 413 and b"megapixels" in body


# 5. serve on a port that is taken: one sentence, before the model loads


def test_serve_on_a_busy_port_is_one_sentence(capsys, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = _cli(capsys, "serve", str(tmp_path / "no-run"), "--port", str(port))
    assert code == 1 and "Traceback" not in err
    assert f"Cannot listen on 127.0.0.1:{port}: the port is in use" in err and "no-run" not in err


def test_a_mask_of_the_limit_is_still_read(tmp_path):
    """The header check refuses only what is over the limit: a 4096x4096 index mask still reads."""
    from spadekit.masks import MAX_MASK_PIXELS, open_image

    path = tmp_path / "big.png"
    Image.new("L", (4096, 4096)).save(path)
    assert MAX_MASK_PIXELS >= 4096 * 4096 and open_image(path, "mask").size == (4096, 4096)
