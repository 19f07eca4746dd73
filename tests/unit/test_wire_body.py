"""The body reader every service shares (services/wire.py read_body): content codings
(gzip, deflate, identity) inflated as they arrive and never past the body limit."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import tracemalloc
import zlib

import pytest

from genserve.errors import (
    GenserveError,
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from services.wire import Limits, read_body

BODY = b'{"texts": ["' + b"The cat sleeps. " * 200 + b'"]}'


def read(
    body: bytes, encoding: str | None, *, limit: int = 64 * 1024, chunk: int = 1 << 16
) -> bytes | None:
    limits = Limits()
    limits.max_body_bytes = limit
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]

    async def receive() -> dict:
        return messages.pop(0)

    headers = {"content-type": "application/json"}
    if encoding is not None:
        headers["content-encoding"] = encoding
    return asyncio.run(read_body({"path": "/v1/translate"}, receive, headers, limits))


def raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(wbits=-15)
    return z.compress(data) + z.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZip", gzip.compress),
        ("deflate", zlib.compress),  # what HTTP means by deflate (tritonclient sends it)
        ("deflate", raw_deflate),  # what some clients send instead
        ("identity, gzip", gzip.compress),
    ],
)
@pytest.mark.parametrize("chunk", [1 << 16, 7])
def test_bodies_are_inflated(encoding: str | None, encode, chunk: int) -> None:
    assert read(encode(BODY), encoding, chunk=chunk) == BODY


@pytest.mark.parametrize("chunk", [1 << 16, 3])
def test_gzip_members_follow_one_another(chunk: int) -> None:
    half = len(BODY) // 2
    body = gzip.compress(BODY[:half]) + gzip.compress(BODY[half:])
    assert read(body, "gzip", chunk=chunk) == BODY


def test_an_empty_body_stays_empty() -> None:
    assert read(b"", "gzip") == b""


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "gzip, gzip", "gzip;q=1"])
def test_an_unknown_coding_is_415(encoding: str) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        read(gzip.compress(BODY), encoding)
    assert info.value.field == "content-encoding" and info.value.http_status == 415


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(BODY)[:-9]),  # truncated
        ("gzip", gzip.compress(BODY) + b"junk"),  # bytes after the stream
        ("deflate", b"\x78"),
        ("deflate", zlib.compress(BODY)[:-3]),
        ("gzip", zlib.compress(BODY)),
    ],
)
@pytest.mark.parametrize("chunk", [1 << 16, 5])
def test_a_corrupt_stream_is_400(encoding: str, body: bytes, chunk: int) -> None:
    with pytest.raises(InvalidInput) as info:
        read(body, encoding, chunk=chunk)
    assert info.value.field == "body" and info.value.http_status == 400


def test_the_limit_holds_after_inflation() -> None:
    limit = 4096
    assert read(gzip.compress(b"x" * limit), "gzip", limit=limit) == b"x" * limit
    with pytest.raises(PayloadTooLarge) as info:
        read(gzip.compress(b"x" * (limit + 1)), "gzip", limit=limit)
    assert info.value.field == "body" and info.value.http_status == 413


def test_a_zip_bomb_is_413_without_inflating_it() -> None:
    z = zlib.compressobj(9, wbits=31)
    zeros = bytes(1 << 20)
    bomb = b"".join(z.compress(zeros) for _ in range(512)) + z.flush()  # 512 MiB of zeros
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge) as info:
            read(bomb, "gzip", limit=1 << 20, chunk=1 << 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.field == "body"
    assert peak < 16 << 20, peak  # about the limit, never the 512 MiB


def test_the_compressed_body_counts_against_the_limit_too() -> None:
    noise = bytes(range(256)) * 64  # hardly compresses
    with pytest.raises(GenserveError) as info:
        read(gzip.compress(noise), "gzip", limit=4096)
    assert info.value.http_status == 413


# -- slow bodies: a deadline for the whole body, and for each of its pieces ----------------


def read_slowly(
    pieces: list[tuple[float, bytes]], *, whole_s: float, idle_s: float, declared: int = 64
) -> bytes | None:
    """read_body over (delay before it, bytes) pieces; the last one may never come."""
    limits = Limits()
    limits.body_timeout_s, limits.body_idle_timeout_s = whole_s, idle_s
    queue = list(pieces)

    async def receive() -> dict:
        delay, data = queue.pop(0)
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": data, "more_body": bool(queue)}

    headers = {"content-type": "application/json", "content-length": str(declared)}
    return asyncio.run(read_body({"path": "/v1/samples"}, receive, headers, limits))


def test_a_body_in_time_is_read_whatever_its_pauses() -> None:
    pieces = [(0.0, b'{"seed"'), (0.05, b": 1"), (0.05, b"}")]
    assert read_slowly(pieces, whole_s=1.0, idle_s=0.2) == b'{"seed": 1}'


@pytest.mark.usefixtures("no_gc_pauses")
def test_a_body_that_trickles_past_the_deadline_is_408() -> None:
    pieces = [(0.05, b" ")] * 100  # never idle for long, never done in time
    started = time.perf_counter()
    with pytest.raises(RequestTimeout) as info:
        read_slowly(pieces, whole_s=0.3, idle_s=0.2)
    assert 0.25 < time.perf_counter() - started < 0.6
    exc = info.value
    assert exc.http_status == 408 and exc.code == "request_timeout" and exc.field == "body"
    assert "within 0.3 s" in exc.message
    assert exc.grpc_code == "DEADLINE_EXCEEDED"
    assert exc.http_headers() == {"connection": "close"}  # the rest is never read


@pytest.mark.usefixtures("no_gc_pauses")
def test_a_body_that_stops_is_408_after_the_idle_timeout() -> None:
    started = time.perf_counter()
    with pytest.raises(RequestTimeout) as info:
        read_slowly([(0.0, b'{"se'), (60.0, b"")], whole_s=10.0, idle_s=0.2)
    assert time.perf_counter() - started < 0.5
    assert "for 0.2 s" in info.value.message and "4 bytes read" in info.value.message


def test_the_timeouts_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENSERVE_SERVER_BODY_TIMEOUT_S", "3")
    limits = Limits()
    assert limits.timeouts() == (3.0, 5.0)  # the idle default: 5 s
    assert Limits().body_timeout_s is None  # read per instance, at start-up
    monkeypatch.setenv("GENSERVE_SERVER_BODY_IDLE_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="body_idle_timeout_s"):
        Limits().timeouts()


def test_a_stalled_body_is_answered_408_and_the_connection_closed_by_every_app() -> None:
    """WireMiddleware (every service): 408 in genserve's shape with Connection: close,
    even on a path no route takes; a client gone mid-body ends its exchange (499)."""
    from services.wire import create_app

    limits = Limits()
    limits.body_timeout_s, limits.body_idle_timeout_s = 0.2, 0.2
    app = create_app("test", "slow bodies", limits)

    @app.post("/v1/echo")
    async def echo() -> dict:
        return {}

    def call(path: str, then: dict | None) -> list[dict]:
        sent: list[dict] = []
        first = True

        async def receive() -> dict:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b"{", "more_body": True}
            if then is None:
                await asyncio.sleep(60)
            return then or {}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"9")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
            "scheme": "http",
            "http_version": "1.1",
        }
        asyncio.run(app(scope, receive, send))
        return sent

    for path in ("/v1/echo", "/v1/nowhere"):
        start, body = call(path, None)
        assert start["status"] == 408, path
        headers = dict(start["headers"])
        assert headers[b"connection"] == b"close"
        assert json.loads(body["body"])["error"]["code"] == "request_timeout"
    start, body = call("/v1/echo", {"type": "http.disconnect"})
    assert start["status"] == 499 and body["body"] == b""
