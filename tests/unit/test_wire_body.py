"""The body reader every service shares (services/wire.py read_body): content codings
(gzip, deflate, identity) inflated as they arrive and never past the body limit."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib

import pytest

from genserve.errors import GenserveError, InvalidInput, PayloadTooLarge, UnsupportedMediaType
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
