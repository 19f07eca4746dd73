"""The gateway in front of real model services: REST, the inference protocol over HTTP and
gRPC with the unmodified tritonclient, keys, limits, and services that die or hang."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from PIL import Image
from tritonclient.utils import InferenceServerException

from tests.e2e.conftest import Server, free_port, gateway_env

pytestmark = pytest.mark.e2e

JSON = {"content-type": "application/json"}
PROMPT = "a small red circle at the top left on a blue background"


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def post(gw: Server, path: str, body: object, key: str, **headers: str) -> httpx.Response:
    return httpx.post(gw.url + path, json=body, headers={**auth(key), **headers}, timeout=60)


def pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


# -- REST ---------------------------------------------------------------------------------


def test_rest_translate_with_request_id_passed_to_the_service(
    gateway: Server, translation_server: Server, api_keys: dict[str, str]
) -> None:
    r = post(
        gateway,
        "/v1/translate",
        {"texts": ["I am a student."], "return_attention": True},
        api_keys["full"],
        **{"x-request-id": "trace-me-42"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "trace-me-42"
    out = r.json()["translations"][0]
    assert out["text"] == "Je suis étudiant."
    assert len(out["attention"]["matrix"]) == len(out["target_tokens"])
    time.sleep(0.3)  # log lines are flushed as they are written; give the pipes a moment
    assert "request_id=trace-me-42" in translation_server.log.read_text()
    assert "request_id=trace-me-42" in gateway.log.read_text()
    r = httpx.get(gateway.url + "/v1/models", headers=auth(api_keys["full"]))
    assert {m["name"]: m["ready"] for m in r.json()["models"]} == {
        "gan": True,
        "translation": True,
        "imagegen": True,
    }


def test_rest_gan_samples_and_interpolation_match_the_service(
    gateway: Server, gan_server: Server, api_keys: dict[str, str]
) -> None:
    body = {"seed": 3, "n": 4, "digit": 5}
    via_gateway = post(gateway, "/v1/samples", body, api_keys["gan-only"])
    direct = httpx.post(gan_server.url + "/v1/samples", json=body)
    assert via_gateway.status_code == 200
    assert via_gateway.json() == direct.json()
    gif = post(
        gateway, "/v1/interpolate", {"seed_a": 1, "seed_b": 2, "frames": 6}, api_keys["full"]
    )
    assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
    assert Image.open(io.BytesIO(gif.content)).n_frames == 6


def test_rest_images_sync_and_job_with_frames(gateway: Server, api_keys: dict[str, str]) -> None:
    key = api_keys["full"]
    body = {"prompt": PROMPT, "seed": 11, "steps": 8, "frames": "gif"}
    sync = post(gateway, "/v1/images", body, key)
    assert sync.status_code == 200, sync.text
    job = post(gateway, "/v1/jobs", body, key)
    assert job.status_code == 202
    job_id = job.json()["id"]
    deadline = time.monotonic() + 30
    status = job.json()
    while status["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        status = httpx.get(f"{gateway.url}/v1/jobs/{job_id}", headers=auth(key)).json()
    assert status["status"] == "succeeded" and status["step"] == 8
    result = httpx.get(f"{gateway.url}/v1/jobs/{job_id}/result", headers=auth(key)).json()
    assert result == sync.json()  # same seed, same bytes, frames included
    gif = Image.open(io.BytesIO(base64.b64decode(result["images"][0]["frames_base64"])))
    assert gif.n_frames == 8
    gone = httpx.get(f"{gateway.url}/v1/jobs/..%2F..%2Fmetrics", headers=auth(key))
    assert gone.status_code == 404


def test_bad_input_is_refused_at_the_gateway_naming_the_field(
    gateway: Server, api_keys: dict[str, str]
) -> None:
    key = api_keys["full"]
    r = post(gateway, "/v1/images", {"prompt": PROMPT, "steps": 0}, key)
    assert r.status_code == 400 and r.json()["error"]["field"] == "steps"
    r = post(gateway, "/v1/translate", {"texts": []}, key)
    assert r.status_code == 400 and r.json()["error"]["field"] == "texts"
    r = httpx.get(gateway.url + "/v1/nowhere", headers=auth(key))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert r.headers["x-request-id"]


def test_openapi_documents_every_route(gateway: Server, api_keys: dict[str, str]) -> None:
    spec = httpx.get(gateway.url + "/openapi.json", headers=auth(api_keys["full"])).json()
    for path in (
        "/v1/translate",
        "/v1/images",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/samples",
        "/v1/interpolate",
        "/v2/models/{name}/infer",
    ):
        assert path in spec["paths"], path
    schema = spec["components"]["schemas"]["TranslateRequest"]
    assert schema["properties"]["texts"]["maxItems"] == 64


# -- the inference protocol, with the unmodified tritonclient -----------------------------


@pytest.fixture(params=["http", "grpc"])
def triton(request: pytest.FixtureRequest, gateway: Server, api_keys: dict[str, str]):
    """A tritonclient with default options, and the headers carrying the API key."""
    if request.param == "http":
        client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
        return triton_http, client, auth(api_keys["full"])
    client = triton_grpc.InferenceServerClient(gateway.grpc)  # type: ignore[attr-defined]
    return triton_grpc, client, auth(api_keys["full"])


def test_protocol_health_and_metadata(triton) -> None:
    mod, client, headers = triton
    assert client.is_server_live() and client.is_server_ready()
    for name in ("translation", "imagegen", "gan"):
        assert client.is_model_ready(name, headers=headers)
    meta = client.get_model_metadata("imagegen", headers=headers)
    if mod is triton_grpc:
        inputs = {t.name: t.datatype for t in meta.inputs}
    else:
        inputs = {t["name"]: t["datatype"] for t in meta["inputs"]}
    assert inputs == {"PROMPT": "BYTES", "NEGATIVE_PROMPT": "BYTES"}
    server = client.get_server_metadata(headers=headers)
    assert (server.name if mod is triton_grpc else server["name"]) == "genserve"


def test_protocol_translation(triton, gateway: Server, api_keys: dict[str, str]) -> None:
    mod, client, headers = triton
    texts = np.array([b"I am a student.", b"The cat is black."], dtype=object)
    text = mod.InferInput("TEXT", [2], "BYTES")
    text.set_data_from_numpy(texts)
    result = client.infer("translation", [text], headers=headers, parameters={"num_beams": 1})
    out = [t.decode() for t in result.as_numpy("TRANSLATION")]
    rest = post(
        gateway,
        "/v1/translate",
        {"texts": [t.decode() for t in texts], "num_beams": 1},
        api_keys["full"],
    ).json()["translations"]
    assert out == [t["text"] for t in rest]
    assert np.allclose(result.as_numpy("SCORE"), [t["score"] for t in rest], atol=1e-5)


def test_protocol_gan_rows_equal_rest_samples(
    triton, gateway: Server, api_keys: dict[str, str]
) -> None:
    mod, client, headers = triton
    seeds = mod.InferInput("SEED", [3], "INT64")
    seeds.set_data_from_numpy(np.array([4, 5, 6], dtype=np.int64))
    digits = mod.InferInput("DIGIT", [3], "INT32")
    digits.set_data_from_numpy(np.array([7, -1, 0], dtype=np.int32))
    result = client.infer("gan", [seeds, digits], headers=headers)
    images = result.as_numpy("IMAGE")
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    drawn = result.as_numpy("DIGIT").tolist()
    assert drawn[0] == 7 and drawn[2] == 0
    for i, (seed, digit) in enumerate(((4, 7), (5, None), (6, 0))):
        body = {"seed": seed, "n": 1} | ({} if digit is None else {"digit": digit})
        rest = post(gateway, "/v1/samples", body, api_keys["full"]).json()["images"][0]
        assert np.array_equal(images[i], pixels(rest["png_base64"]))
        assert drawn[i] == rest["digit"]


def test_protocol_imagegen_equals_rest(triton, gateway: Server, api_keys: dict[str, str]) -> None:
    mod, client, headers = triton
    prompt = mod.InferInput("PROMPT", [1], "BYTES")
    prompt.set_data_from_numpy(np.array([PROMPT.encode()], dtype=object))
    params = {"steps": 6, "seed": 21, "scheduler": "euler_a"}
    result = client.infer("imagegen", [prompt], headers=headers, parameters=params)
    image = result.as_numpy("IMAGE")
    assert image.shape == (1, 32, 32, 3)
    assert result.as_numpy("SEED").tolist() == [21]
    rest = post(gateway, "/v1/images", {"prompt": PROMPT, **params}, api_keys["full"]).json()
    assert np.array_equal(image[0], pixels(rest["images"][0]["png_base64"]))


def test_protocol_errors_name_the_field(triton) -> None:
    mod, client, headers = triton
    prompt = mod.InferInput("PROMPT", [1], "BYTES")
    prompt.set_data_from_numpy(np.array([PROMPT.encode()], dtype=object))
    with pytest.raises(InferenceServerException, match=r"parameters\.steps"):
        client.infer("imagegen", [prompt], headers=headers, parameters={"steps": 1000})
    wrong = mod.InferInput("WORDS", [1], "BYTES")
    wrong.set_data_from_numpy(np.array([b"hello"], dtype=object))
    with pytest.raises(InferenceServerException, match="no input 'WORDS'"):
        client.infer("translation", [wrong], headers=headers)
    with pytest.raises(InferenceServerException, match="no model named"):
        client.infer("llama", [wrong], headers=headers)


def test_protocol_auth(gateway: Server, api_keys: dict[str, str]) -> None:
    text = triton_grpc.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"Hello."], dtype=object))
    client = triton_grpc.InferenceServerClient(gateway.grpc)  # type: ignore[attr-defined]
    with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
        client.infer("translation", [text])
    with pytest.raises(InferenceServerException, match="PERMISSION_DENIED"):
        client.infer("translation", [text], headers=auth(api_keys["gan-only"]))
    http = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
    with pytest.raises(InferenceServerException, match="401"):
        http.infer("translation", [triton_http.InferInput("TEXT", [1], "BYTES")])


# -- keys, limits -------------------------------------------------------------------------


def test_keys_and_scopes(gateway: Server, api_keys: dict[str, str]) -> None:
    url = gateway.url
    body = {"texts": ["Hello."]}
    r = httpx.post(url + "/v1/translate", json=body)
    assert r.status_code == 401 and r.json()["error"]["field"] == "authorization"
    r = httpx.post(url + "/v1/translate", json=body, headers=auth("gs_not-a-key"))
    assert r.status_code == 401
    r = httpx.post(url + "/v1/translate", json=body, headers={"authorization": "Basic abc"})
    assert r.status_code == 401
    r = post(gateway, "/v1/translate", body, api_keys["gan-only"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    # Open to everyone: health and the playground page.
    for path in ("/", "/readyz", "/livez", "/v2/health/live", "/static/app.js"):
        assert httpx.get(url + path).status_code == 200, path
    # Metrics and docs: never anonymous; metrics only with the metrics scope.
    for path in ("/metrics", "/docs", "/openapi.json", "/docs.json", "/schema.json"):
        assert httpx.get(url + path).status_code == 401, path
    assert httpx.get(url + "/metrics", headers=auth(api_keys["full"])).status_code == 403
    metrics = httpx.get(url + "/metrics", headers=auth(api_keys["ops"]))
    assert metrics.status_code == 200 and "genserve_gateway_backend_up" in metrics.text
    assert "genserve_tokens_total{" not in metrics.text  # its own, not the services'
    assert httpx.get(url + "/docs", headers=auth(api_keys["gan-only"])).status_code == 200
    # A model's own routes need its scope, on every protocol.
    gan_only = auth(api_keys["gan-only"])
    assert httpx.get(url + "/v1/models/imagegen", headers=gan_only).status_code == 403
    assert httpx.get(url + "/v1/models/gan", headers=gan_only).status_code == 200
    assert httpx.get(url + "/v2/models/translation", headers=gan_only).status_code == 403
    grpc_client = triton_grpc.InferenceServerClient(gateway.grpc)  # type: ignore[attr-defined]
    with pytest.raises(InferenceServerException, match="PERMISSION_DENIED"):
        grpc_client.get_model_metadata("translation", headers=gan_only)
    # A decoded control character matches a route's "$" but no scope: refused outright.
    for method, path in (("GET", "/metrics%0A"), ("POST", "/v1/translate%0A"), ("GET", "/docs%0a")):
        r = httpx.request(method, url + path, headers=gan_only, json={"texts": ["Hi."]})
        assert r.status_code == 404, (method, path, r.status_code)
    # The key itself never reaches a log line.
    time.sleep(0.2)
    log = gateway.log.read_text()
    assert "caller=full" in log
    assert not any(api_keys[k] in log for k in ("full", "gan-only", "ops", "slow"))


def test_rate_limit_per_key(gateway: Server, api_keys: dict[str, str]) -> None:
    body = {"seed": 1}
    codes = [post(gateway, "/v1/samples", body, api_keys["slow"]).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = post(gateway, "/v1/samples", body, api_keys["slow"])
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 10  # 6 a minute: one every 10 s
    # Another key is not slowed down by it.
    assert post(gateway, "/v1/samples", body, api_keys["gan-only"]).status_code == 200
    seeds = triton_grpc.InferInput("SEED", [1], "INT64")
    seeds.set_data_from_numpy(np.array([1], dtype=np.int64))
    client = triton_grpc.InferenceServerClient(gateway.grpc)  # type: ignore[attr-defined]
    with pytest.raises(InferenceServerException, match="RESOURCE_EXHAUSTED"):
        client.infer("gan", [seeds], headers=auth(api_keys["slow"]))
    # Health, readiness and metadata are never rate limited, on either protocol: an
    # OIP client reads a 429 there as "not ready".
    http = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
    for _ in range(5):
        assert http.is_model_ready("gan", headers=auth(api_keys["slow"]))
        assert http.get_model_metadata("gan", headers=auth(api_keys["slow"]))["name"] == "gan"
        assert http.get_server_metadata(headers=auth(api_keys["slow"]))["name"] == "genserve"
        assert client.is_model_ready("gan", headers=auth(api_keys["slow"]))
        assert client.get_model_metadata("gan", headers=auth(api_keys["slow"])).name == "gan"
    # ... but they still need the model's scope.
    r = httpx.get(f"{gateway.url}/v2/models/translation/ready", headers=auth(api_keys["slow"]))
    assert r.status_code == 403


def test_body_limit(gateway: Server, api_keys: dict[str, str]) -> None:
    big = {"texts": ["x" * 4000] * 64}  # 256 KB, over the 64 KiB default
    r = post(gateway, "/v1/translate", big, api_keys["full"])
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    text = triton_grpc.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"x" * 200_000], dtype=object))
    client = triton_grpc.InferenceServerClient(gateway.grpc)  # type: ignore[attr-defined]
    with pytest.raises(InferenceServerException, match="RESOURCE_EXHAUSTED"):
        client.infer("translation", [text], headers=auth(api_keys["full"]))


def test_pickle_is_refused_on_every_service_port(
    gateway: Server,
    gan_server: Server,
    translation_server: Server,
    imagegen_server: Server,
    api_keys: dict[str, str],
) -> None:
    pickled = b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."
    targets = [
        (gateway, "/v1/samples"),
        (gateway, "/v2/models/gan/infer"),
        (gan_server, "/v1/samples"),
        (translation_server, "/v1/translate"),
        (imagegen_server, "/v1/images"),
        (imagegen_server, "/v1/jobs"),
    ]
    for server, path in targets:
        for ctype in ("application/python-pickle", "application/x-pickle"):
            r = httpx.post(
                server.url + path,
                content=pickled,
                headers={"content-type": ctype, **auth(api_keys["full"])},
            )
            assert r.status_code == 415, (server.url, path, ctype, r.text)


def test_cors_is_off_by_default(gateway: Server) -> None:
    r = httpx.options(
        gateway.url + "/v1/translate",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers


# -- services down, slow, and overload: a gateway of its own ------------------------------


class Silent:
    """A TCP server that accepts connections and never answers: a hung service."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture(scope="module")
def fragile(tmp_path_factory: pytest.TempPathFactory, gan_model_dir: Path) -> Iterator[dict]:
    """A GAN service of its own (to kill), a hung translation service, no imagegen, and a
    gateway with auth off, a 1 s translation timeout, 2 open requests at most and CORS."""
    logs = tmp_path_factory.mktemp("fragile")
    gan = Server("services.gan:GanService", {}, logs / "gan.log")
    silent = Silent()
    nothing = f"http://127.0.0.1:{free_port()}"
    grpc_port = free_port()
    env = gateway_env(
        {"gan": gan.url, "translation": silent.url, "imagegen": nothing},
        grpc_port,
        GENSERVE_GATEWAY_AUTH="false",
        GENSERVE_GATEWAY_TIMEOUT_TRANSLATION_S="1",
        GENSERVE_GATEWAY_MAX_IN_FLIGHT="2",
        # Above the total, so that this one caller (this machine) meets the bound under
        # test, everyone's (503), before its own (429, tests/e2e/test_slow_clients.py).
        GENSERVE_GATEWAY_MAX_IN_FLIGHT_PER_CALLER="3",
        GENSERVE_GATEWAY_CORS_ORIGINS="https://app.example",
    )
    gw = Server("services.gateway:Gateway", env, logs / "gw.log")
    yield {"gan": gan, "gateway": gw, "logs": logs, "grpc": f"127.0.0.1:{grpc_port}"}
    gw.stop()
    gan.stop()
    silent.close()


def test_killed_service_answers_503_at_once_and_recovers(fragile: dict) -> None:
    gw, gan = fragile["gateway"], fragile["gan"]
    body = {"seed": 9}
    assert httpx.post(gw.url + "/v1/samples", json=body).status_code == 200
    for pid in gan.pids():  # the arbiter and its worker: the whole service
        os.kill(pid, signal.SIGKILL)
    gan.proc.wait(timeout=10)
    started = time.perf_counter()
    r = httpx.post(gw.url + "/v1/samples", json=body, timeout=10)
    elapsed = time.perf_counter() - started
    assert r.status_code == 503 and elapsed < 1.0, (r.status_code, elapsed)
    assert r.json()["error"]["code"] == "backend_unavailable" and r.headers["retry-after"]
    started = time.perf_counter()
    assert httpx.post(gw.url + "/v1/samples", json=body).status_code == 503
    assert time.perf_counter() - started < 1.0
    # Back on the same port: the route recovers without touching the gateway.
    fragile["gan"] = revived = Server(
        "services.gan:GanService", {}, fragile["logs"] / "gan.log", port=gan.port
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = httpx.post(gw.url + "/v1/samples", json=body)
        if r.status_code == 200:
            break
        time.sleep(0.1)
    assert r.status_code == 200
    revived.stop()


def test_service_not_listening_is_503_and_hung_service_is_504(fragile: dict) -> None:
    gw = fragile["gateway"]
    started = time.perf_counter()
    r = httpx.post(gw.url + "/v1/images", json={"prompt": PROMPT})
    assert r.status_code == 503 and time.perf_counter() - started < 1.0
    started = time.perf_counter()
    r = httpx.post(gw.url + "/v1/translate", json={"texts": ["Hello."]}, timeout=10)
    elapsed = time.perf_counter() - started
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    assert 0.9 < elapsed < 3.0


@pytest.mark.usefixtures("no_gc_pauses")
def test_overload_is_503_with_retry_after(fragile: dict) -> None:
    gw = fragile["gateway"]
    hung: list[int] = []

    def wait_for_hung_service() -> None:
        hung.append(
            httpx.post(gw.url + "/v1/translate", json={"texts": ["Hi."]}, timeout=10).status_code
        )

    threads = [threading.Thread(target=wait_for_hung_service) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    started = time.perf_counter()
    r = httpx.post(gw.url + "/v1/translate", json={"texts": ["Hi."]})
    assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
    assert r.headers["retry-after"] == "1" and time.perf_counter() - started < 0.5
    for t in threads:
        t.join()
    assert hung == [504, 504]


def test_auth_off_keeps_metrics_and_docs_on_loopback_and_cors_when_asked(fragile: dict) -> None:
    gw = fragile["gateway"]
    assert httpx.get(gw.url + "/metrics").status_code == 200  # from this machine
    r = httpx.options(
        gw.url + "/v1/samples",
        headers={"origin": "https://app.example", "access-control-request-method": "POST"},
    )
    assert r.headers.get("access-control-allow-origin") == "https://app.example"
    r = httpx.post(
        gw.url + "/v1/samples", json={"seed": 1}, headers={"origin": "https://app.example"}
    )
    assert r.headers.get("access-control-allow-origin") == "https://app.example"


def test_grpc_down_service_is_unavailable_at_once(fragile: dict) -> None:
    prompt = triton_grpc.InferInput("PROMPT", [1], "BYTES")
    prompt.set_data_from_numpy(np.array([PROMPT.encode()], dtype=object))
    client = triton_grpc.InferenceServerClient(fragile["grpc"])
    started = time.perf_counter()
    with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
        client.infer("imagegen", [prompt])
    assert time.perf_counter() - started < 1.0


def test_metrics_label_every_protocol_by_its_route_template(
    gateway: Server, api_keys: dict[str, str]
) -> None:
    client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
    seeds = triton_http.InferInput("SEED", [1], "INT64")
    seeds.set_data_from_numpy(np.array([5], dtype=np.int64))
    client.infer("gan", [seeds], headers=auth(api_keys["full"]))
    assert client.is_model_ready("gan", headers=auth(api_keys["full"]))
    text = httpx.get(gateway.url + "/metrics", headers=auth(api_keys["ops"])).text
    lines = [x for x in text.splitlines() if x.startswith("genserve_gateway_requests_total{")]
    for route in ("/v2/models/{name}/infer", "/v2/models/{name}/ready"):
        assert any(f'route="{route}"' in x for x in lines), route


def test_a_grpc_call_the_client_gave_up_on_is_not_counted_as_served(
    gateway: Server, api_keys: dict[str, str]
) -> None:
    client = triton_grpc.InferenceServerClient(gateway.grpc)  # type: ignore[attr-defined]
    prompt = triton_grpc.InferInput("PROMPT", [1], "BYTES")
    prompt.set_data_from_numpy(np.array([b"a red circle"], dtype=object))
    with pytest.raises(InferenceServerException, match="Deadline"):
        client.infer(
            "imagegen",
            [prompt],
            headers=auth(api_keys["full"]),
            parameters={"steps": 150},
            client_timeout=0.3,
        )
    time.sleep(0.5)
    text = httpx.get(gateway.url + "/metrics", headers=auth(api_keys["ops"])).text
    cancelled = [
        x
        for x in text.splitlines()
        if x.startswith("genserve_gateway_requests_total{")
        and 'route="grpc:ModelInfer"' in x
        and 'status="CANCELLED"' in x
    ]
    assert cancelled and float(cancelled[0].rsplit(" ", 1)[1]) >= 1
