"""The GAN service started with bentoml on a loopback port, called over HTTP."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def post(server: Server, path: str, body: object, **kw: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1{path}", json=body, timeout=30, **kw)


def test_ready_and_model_metadata(gan_server: Server) -> None:
    print(f"GAN service start to ready: {gan_server.ready_seconds:.2f}s")
    info = httpx.get(f"{gan_server.url}/v1/model").json()
    assert info["kind"] == "gan" and info["provider"] == "CPUExecutionProvider"
    assert [t["name"] for t in info["inputs"]] == ["z", "class_weights"]


def test_serving_processes_never_load_torch(gan_server: Server) -> None:
    pids = gan_server.pids()
    assert len(pids) >= 2  # the arbiter and at least one worker
    for pid in pids:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libtorch" not in maps, f"process {pid} has torch loaded"


def test_json_samples(gan_server: Server) -> None:
    r = post(gan_server, "/samples", {"digit": 7, "n": 5, "seed": 42})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["seed"] == 42 and (body["width"], body["height"]) == (32, 32)
    assert [i["digit"] for i in body["images"]] == [7] * 5
    img = Image.open(io.BytesIO(base64.b64decode(body["images"][0]["png_base64"])))
    assert img.size == (32, 32) and img.format == "PNG"
    assert r.headers["x-request-id"]


def test_same_seed_same_bytes_and_random_seed_is_echoed(gan_server: Server) -> None:
    body = {"n": 1, "seed": 2**64 - 1, "truncation": 0.8, "format": "png"}
    first, second = post(gan_server, "/samples", body), post(gan_server, "/samples", body)
    assert first.headers["content-type"] == "image/png"
    assert first.content == second.content
    free = post(gan_server, "/samples", {"format": "png"})
    seed = int(free.headers["x-genserve-seed"])
    again = post(gan_server, "/samples", {"format": "png", "seed": seed})
    assert again.content == free.content


def test_concurrent_requests_are_batched_and_give_the_same_bytes(gan_server: Server) -> None:
    bodies = [{"n": 1 + i % 4, "seed": 1000 + i, "digit": i % 10} for i in range(24)]
    alone = [post(gan_server, "/samples", b).json() for b in bodies]
    before = _metric(gan_server, "genserve_batch_size_count", 'model="gan"')
    rows_before = _metric(gan_server, "genserve_batch_size_sum", 'model="gan"')
    with ThreadPoolExecutor(max_workers=12) as pool:
        together = list(pool.map(lambda b: post(gan_server, "/samples", b).json(), bodies))
    calls = _metric(gan_server, "genserve_batch_size_count", 'model="gan"') - before
    rows = _metric(gan_server, "genserve_batch_size_sum", 'model="gan"') - rows_before
    assert together == alone  # byte-identical PNGs, batched or not
    assert rows == sum(b["n"] for b in bodies)
    assert calls < len(bodies), "no two requests shared a model call"


def test_grid(gan_server: Server) -> None:
    r = post(gan_server, "/samples", {"n": 10, "seed": 3, "format": "grid"})
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (4 * 32 + 5 * 2, 3 * 32 + 4 * 2)
    assert len(r.headers["x-genserve-digits"].split(",")) == 10


def test_interpolation_gif_and_strip(gan_server: Server) -> None:
    body = {"seed_a": 1, "seed_b": 2, "frames": 8, "digit_a": 3, "digit_b": 8}
    gif = post(gan_server, "/interpolate", body)
    assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
    assert Image.open(io.BytesIO(gif.content)).n_frames == 8
    strip = post(gan_server, "/interpolate", {**body, "format": "png"})
    assert Image.open(io.BytesIO(strip.content)).size == (8 * 32 + 9 * 2, 32 + 4)
    frames = post(gan_server, "/interpolate", {**body, "format": "json"}).json()["images"]
    start = post(gan_server, "/samples", {"seed": 1, "digit": 3}).json()["images"][0]
    assert frames[0]["png_base64"] == start["png_base64"]
    assert [f["digit"] for f in frames][::7] == [3, 8]


BAD = [
    ("/samples", {"digit": 10}, "digit"),
    ("/samples", {"n": 0}, "n"),
    ("/samples", {"n": 1000}, "n"),
    ("/samples", {"seed": -1}, "seed"),
    ("/samples", {"seed": 2**64}, "seed"),
    ("/samples", {"truncation": 0}, "truncation"),
    ("/samples", {"truncation": 2}, "truncation"),
    ("/samples", {"n": "5"}, "n"),
    ("/samples", {"digit": 3.5}, "digit"),
    ("/samples", {"n": True}, "n"),
    ("/samples", {"format": "bmp"}, "format"),
    ("/samples", {"format": "png", "n": 2}, "format"),
    ("/samples", {"colour": "red"}, "colour"),
    ("/samples", [1, 2], "body"),
    ("/interpolate", {"seed_a": 1}, "seed_b"),
    ("/interpolate", {"seed_a": 1, "seed_b": 2, "frames": 1}, "frames"),
    ("/interpolate", {"seed_a": 1, "seed_b": 2, "frames": 65}, "frames"),
    ("/interpolate", {"seed_a": "x", "seed_b": 2}, "seed_a"),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD)
def test_bad_input_is_a_4xx_naming_the_field(
    gan_server: Server, path: str, body: object, field: str
) -> None:
    r = post(gan_server, path, body, headers={"x-request-id": "test-42"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_input" and err["field"] == field
    assert err["request_id"] == "test-42" and r.headers["x-request-id"] == "test-42"
    assert "Traceback" not in r.text


def test_malformed_missing_and_huge_bodies(gan_server: Server) -> None:
    url = f"{gan_server.url}/v1/samples"
    ctype = {"content-type": "application/json"}
    r = httpx.post(url, content=b"{not json", headers=ctype)
    assert r.status_code == 400 and r.json()["error"]["field"] == "body"
    r = httpx.post(url, headers=ctype)
    assert r.status_code == 400 and r.json()["error"]["field"] == "body"
    huge = json.dumps({"seed": 1, "pad": "x" * 1_000_000}).encode()
    r = httpx.post(url, content=huge, headers=ctype)
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"

    def chunks():  # no Content-Length: the limit must hold on the bytes read
        for _ in range(100):
            yield b" " * 10_000

    r = httpx.post(url, content=chunks(), headers=ctype)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_pickle_is_refused(gan_server: Server) -> None:
    for ctype in ("application/python-pickle", "application/octet-stream", "text/plain"):
        r = httpx.post(
            f"{gan_server.url}/v1/samples",
            content=b"\x80\x04K\x01.",
            headers={"content-type": ctype},
        )
        assert r.status_code == 415 and r.json()["error"]["field"] == "content-type"


def test_metrics(gan_server: Server) -> None:
    post(gan_server, "/samples", {"n": 3, "seed": 1})
    text = httpx.get(f"{gan_server.url}/metrics").text
    assert _metric(gan_server, "genserve_samples_total", 'model="gan"') >= 3
    for stage in ("queue", "inference", "postprocess"):
        assert _metric(gan_server, "genserve_stage_duration_seconds_count", f'stage="{stage}"') > 0
    assert "bentoml_service_request_total" not in text  # raw-path series: off
    assert _metric(gan_server, "genserve_requests_in_progress", 'service="gan"') >= 1


def _metric(server: Server, name: str, label: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_wrong_method_uses_the_error_shape(gan_server: Server) -> None:
    r = httpx.get(f"{gan_server.url}/v1/samples")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
