"""Slow clients (slowloris): a caller that opens requests and sends their bodies a byte at a
time holds at most its own share of the gateway's open requests, and only for the body
timeout; everyone else is served as before.

A gateway and a GAN service of their own, with 2 s body timeouts, 8 open requests at most
in the gateway and 2 per caller. The "loris" key stays within its rate limit (the
defaults: 600 a minute, 20 at once) and keeps 10 connections going, each sending its
headers slowly and then its body a byte every 0.25 s; 4 more connections stop halfway
through their request line. The "polite" key sends small GAN requests one after another,
measured just before the attack and during it. With a caller's bound full, its readiness
and metadata calls (tritonclient, HTTP and gRPC) are still answered: they take no place.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Event as Stop
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from genserve.keys import key_digest, new_key
from tests.e2e.conftest import Server, free_port, gateway_env

pytestmark = pytest.mark.e2e

BODY_TIMEOUT_S = 2.0
MAX_IN_FLIGHT = 8
PER_CALLER = 2
LORIS_CONNECTIONS = 10  # more than the gateway's every open request
STALLED_HEADERS = 4
TRICKLE_S = 0.25  # the loris's pace: a byte of body every TRICKLE_S (never idle 2 s)
WINDOW_S = 4.0  # the polite caller's measuring time, before the attack and during it


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory, gan_model_dir: Path) -> Iterator[dict]:
    logs = tmp_path_factory.mktemp("slow")
    keys = {"polite": new_key(), "loris": new_key()}
    entries = [
        {"name": "polite", "sha256": key_digest(keys["polite"]), "scopes": ["gan"]},
        {"name": "loris", "sha256": key_digest(keys["loris"]), "scopes": ["gan"]},
    ]
    entries[0].update(rate_per_minute=60_000, burst=1000)  # polite: as fast as it likes
    (logs / "keys.json").write_text(json.dumps({"keys": entries}))
    timeouts = {
        "GENSERVE_SERVER_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "GENSERVE_SERVER_BODY_IDLE_TIMEOUT_S": str(BODY_TIMEOUT_S),
    }
    gan_port, grpc_port, nothing = free_port(), free_port(), f"http://127.0.0.1:{free_port()}"
    env = gateway_env(
        {"gan": f"http://127.0.0.1:{gan_port}", "translation": nothing, "imagegen": nothing},
        grpc_port,
        GENSERVE_GATEWAY_KEYS_FILE=str(logs / "keys.json"),
        GENSERVE_GATEWAY_RATE_PER_MINUTE="600",  # the defaults, for the loris
        GENSERVE_GATEWAY_BURST="20",
        GENSERVE_GATEWAY_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
        GENSERVE_GATEWAY_MAX_IN_FLIGHT_PER_CALLER=str(PER_CALLER),
        **timeouts,
    )
    with ThreadPoolExecutor(2) as pool:  # both start at once: half the waiting
        gan_f = pool.submit(Server, "services.gan:GanService", timeouts, logs / "gan.log", gan_port)
        gw_f = pool.submit(Server, "services.gateway:Gateway", env, logs / "gw.log")
        gan, gw = gan_f.result(), gw_f.result()
    # The gateway's probe finds the GAN service ready within its interval (0.5 s).
    deadline = time.monotonic() + 10
    ready = False
    while not ready and time.monotonic() < deadline:
        r = httpx.get(gw.url + "/v2/models/gan/ready", headers=auth(keys["polite"]))
        ready = r.status_code == 200
        time.sleep(0.05)
    yield {"gateway": gw, "gan": gan, "keys": keys, "grpc": f"127.0.0.1:{grpc_port}"}
    gw.stop()
    gan.stop()


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict]:
    """An HTTP/1.1 answer's status and JSON body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    length = re.search(r"(?im)^content-length:\s*(\d+)", head)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return status, json.loads(body or b"{}")


async def slow_request(port: int, key: str, stop: Stop, path: str = "/v1/samples") -> dict:
    """One slowloris request: headers a line every 0.1 s, then a body (64 bytes declared)
    a byte every TRICKLE_S until the server answers or closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [
        f"POST {path} HTTP/1.1\r\n",
        "Host: 127.0.0.1\r\n",
        f"Authorization: Bearer {key}\r\n",
        "Content-Type: application/json\r\n",
        "Content-Length: 64\r\n",
        "\r\n",
    ]
    try:
        for line in lines:
            writer.write(line.encode())
            await writer.drain()
            await asyncio.sleep(0.1)
        sent = time.monotonic()  # the headers are complete: the body's clock starts
        answer = asyncio.ensure_future(read_answer(reader))
        body = iter(b'{"seed": 1, "n": 1, "digit": 3, "truncation": 0.5, "format": "json"}')
        while not answer.done() and not stop.is_set():
            try:
                writer.write(bytes([next(body)]))
                await writer.drain()
            except (ConnectionError, StopIteration):
                pass
            await asyncio.wait({answer}, timeout=TRICKLE_S)
        if not answer.done():
            answer.cancel()
            return {"status": None}
        try:
            status, doc = answer.result()
        except (asyncio.IncompleteReadError, ConnectionError):
            return {"status": "closed", "after_s": time.monotonic() - sent}
        after = time.monotonic() - sent
        closed = status == 408 and await asyncio.wait_for(reader.read(), 2) == b""
        code = (doc.get("error") or {}).get("code")
        return {"status": status, "code": code, "after_s": after, "closed": closed}
    finally:
        writer.close()


async def stalled_headers(port: int, stop: Stop) -> None:
    """Half a request line, then nothing: never reaches the gateway's ASGI app."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/sam")
    await writer.drain()
    while not stop.is_set():
        await asyncio.sleep(0.05)
    writer.close()


async def loris(port: int, key: str, stop: Stop, results: list[dict]) -> None:
    async def connection(i: int) -> None:
        await asyncio.sleep(0.03 * i)
        while not stop.is_set():
            result = await slow_request(port, key, stop)
            if result["status"] is not None:
                results.append(result)
            if result["status"] == 429:
                await asyncio.sleep(1.0)  # its Retry-After: the loris keeps to its limits

    await asyncio.gather(
        *(connection(i) for i in range(LORIS_CONNECTIONS)),
        *(stalled_headers(port, stop) for _ in range(STALLED_HEADERS)),
    )


def run_loris(port: int, key: str, stop: Stop, out: multiprocessing.Queue) -> None:
    """The attacker, in a process of its own (as it would be: not sharing the polite
    client's interpreter and its lock)."""
    results: list[dict] = []
    asyncio.run(loris(port, key, stop, results))
    out.put(results)


def timed_requests(client: httpx.Client, url: str, n: int, min_s: float = 0.0) -> list[tuple]:
    """(status, seconds) of sequential small GAN requests: at least n, for at least min_s."""
    out: list[tuple] = []
    started = time.monotonic()
    i = 0
    while len(out) < n or time.monotonic() - started < min_s:
        t = time.perf_counter()
        r = client.post(url + "/v1/samples", json={"seed": i, "n": 1, "digit": i % 10})
        out.append((r.status_code, time.perf_counter() - t))
        i += 1
    return out


def test_a_slowloris_holds_only_its_own_slots_and_only_for_the_body_timeout(slow: dict) -> None:
    gw, keys = slow["gateway"], slow["keys"]
    with httpx.Client(headers=auth(keys["polite"]), timeout=10) as client:
        timed_requests(client, gw.url, 10)  # warm: connection, caches
        baseline = timed_requests(client, gw.url, 60, min_s=WINDOW_S)
        assert {s for s, _ in baseline} == {200}
        base_p95 = float(np.percentile([t for _, t in baseline], 95))

        spawn = multiprocessing.get_context("spawn")
        stop, out = spawn.Event(), spawn.Queue()
        attack = spawn.Process(target=run_loris, args=(gw.port, keys["loris"], stop, out))
        attack.start()
        try:
            time.sleep(1.5)  # the loris is up, its headers in, its slots taken
            during = timed_requests(client, gw.url, 60, min_s=WINDOW_S)
        finally:
            stop.set()
            results = out.get(timeout=10)
            attack.join(timeout=10)
    attack_p95 = float(np.percentile([t for _, t in during], 95))
    statuses = {s for s, _ in during}
    print(
        f"polite p95: baseline {base_p95 * 1000:.1f} ms ({len(baseline)} requests), "
        f"under attack {attack_p95 * 1000:.1f} ms ({len(during)} requests); "
        f"loris answers: {sorted((r['status'], r.get('code')) for r in results)}"
    )
    assert statuses == {200}, statuses  # never 503 (overload) nor 429
    assert attack_p95 <= 2 * base_p95, (base_p95, attack_p95)

    timed_out = [r for r in results if r["status"] == 408]
    refused = [r for r in results if r["status"] == 429]
    # The first PER_CALLER got slots and were cut off at the body timeout, connection
    # closed; those beyond its bound were refused at once, as its own limit (not overload,
    # not its rate limit). The polite caller's requests were never refused meanwhile.
    assert len(timed_out) >= PER_CALLER, results
    for r in timed_out:
        assert r["code"] == "request_timeout" and r["closed"], r
        assert BODY_TIMEOUT_S - 0.2 <= r["after_s"] <= BODY_TIMEOUT_S + 1.0, r
    assert len(refused) >= LORIS_CONNECTIONS - PER_CALLER, results
    assert {r["code"] for r in refused} == {"too_many_open_requests"}, refused
    assert {r["status"] for r in results} <= {408, 429}, results
    # Every slot was given back: the loris may open requests again.
    r = httpx.post(gw.url + "/v1/samples", json={"seed": 1}, headers=auth(keys["loris"]))
    assert r.status_code == 200, r.text


def test_a_model_service_answers_a_stalled_body_408_and_closes(slow: dict) -> None:
    gan = slow["gan"]

    async def stalled() -> tuple[int, dict, float, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", gan.port)
        writer.write(
            b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 40\r\n\r\n{"seed": '
        )
        await writer.drain()
        started = time.monotonic()
        status, doc = await asyncio.wait_for(read_answer(reader), BODY_TIMEOUT_S + 3)
        after = time.monotonic() - started
        rest = await asyncio.wait_for(reader.read(), 2)
        writer.close()
        return status, doc, after, rest

    status, doc, after, rest = asyncio.run(stalled())
    assert status == 408 and doc["error"]["code"] == "request_timeout", doc
    assert doc["error"]["field"] == "body" and doc["error"]["request_id"]
    assert BODY_TIMEOUT_S - 0.2 <= after <= BODY_TIMEOUT_S + 1.0, after
    assert rest == b""  # the service closed the connection
    assert httpx.post(gan.url + "/v1/samples", json={"seed": 2}).status_code == 200


def test_readiness_and_metadata_are_answered_with_the_callers_bound_full(slow: dict) -> None:
    """A caller holding all its open requests (stalled uploads) still reads its model as
    ready: readiness and metadata take no open-request place, so never 429
    too_many_open_requests / RESOURCE_EXHAUSTED, which OIP clients read as "not ready"."""
    gw, key = slow["gateway"], slow["keys"]["polite"]
    headers = auth(key)
    http = triton_http.InferenceServerClient(gw.url.removeprefix("http://"))
    grpc = triton_grpc.InferenceServerClient(slow["grpc"])
    assert http.is_server_live() and grpc.is_server_live()  # connected before the clock runs
    # (Server readiness is False here: translation and imagegen have no service.)
    server_ready = [client.is_server_ready() for client in (http, grpc)]

    def full() -> bool:
        r = httpx.post(gw.url + "/v1/samples", json={"seed": 1}, headers=headers)
        return r.status_code == 429 and r.json()["error"]["code"] == "too_many_open_requests"

    stalled = []
    try:
        for _ in range(PER_CALLER):  # headers in, body never: each holds one of its places
            sock = socket.create_connection(("127.0.0.1", gw.port))
            sock.sendall(
                b"POST /v1/samples HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {key}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            stalled.append(sock)
        deadline = time.monotonic() + 1.0
        while not full():
            assert time.monotonic() < deadline, "the stalled uploads did not fill the bound"
            time.sleep(0.02)
        # Within the body timeout (2 s), while the bound is full:
        assert [client.is_server_ready() for client in (http, grpc)] == server_ready
        for client in (http, grpc):
            assert client.is_model_ready("gan", headers=headers)
        assert http.get_model_metadata("gan", headers=headers)["name"] == "gan"
        assert grpc.get_model_metadata("gan", headers=headers).name == "gan"
        assert http.get_server_metadata(headers=headers)["name"] == "genserve"
        assert grpc.get_server_metadata(headers=headers).name == "genserve"
        r = httpx.get(gw.url + "/v2/models/gan/ready", headers=headers)
        assert r.status_code == 200, r.text
        assert full(), "the bound was given back before the checks ended"  # still held
    finally:
        for sock in stalled:
            sock.close()
        http.close()
        grpc.close()
