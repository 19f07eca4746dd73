"""``docker compose up`` for real: the CPU stack of docker-compose.yml, tested from the host
through the published ports only (Prometheus, which publishes nothing, is asked from inside
its own container). The tests run in file order on one stack; the last one stops it and
checks that ``down -v`` leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from genserve import kinds
from genserve.kinds import Example

from .conftest import MODEL_SERVICES, PROJECT, SERVICES, Stack, docker, leftovers

pytestmark = pytest.mark.compose

KINDS = [k for k in kinds.kinds() if k.example is not None]
DATATYPES = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32, "BOOL": np.bool_}
UID = 10001  # the image's non-root user


def when(iso: str) -> float:
    """Docker's RFC 3339 time (nanoseconds, Z) as seconds since the epoch."""
    from datetime import datetime

    head, _, frac = iso.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(head + "+00:00").timestamp()
    return stamp + (float("0." + frac) if frac else 0.0)


def inputs(module: Any, example: Example) -> list[Any]:
    out: list[Any] = []
    for name, datatype, values in example.inputs:
        dtype = np.object_ if datatype == "BYTES" else DATATYPES[datatype]
        data: np.ndarray = np.array(
            [v.encode() if isinstance(v, str) else v for v in values], dtype=dtype
        )
        tensor = module.InferInput(name, list(data.shape), datatype)
        tensor.set_data_from_numpy(data)
        out.append(tensor)
    return out


# -- up, in order, healthy ------------------------------------------------------------


def test_the_stack_comes_up_healthy_and_in_order(stack: Stack) -> None:
    init = stack.inspect("init")["State"]
    assert init["Status"] == "exited" and init["ExitCode"] == 0
    started = {name: when(stack.inspect(name)["State"]["StartedAt"]) for name in SERVICES}
    for name in (*MODEL_SERVICES, "gateway"):
        state = stack.inspect(name)["State"]
        assert state["Health"]["Status"] == "healthy", (name, state["Health"]["Log"][-1:])
        assert state["Running"] and stack.inspect(name)["RestartCount"] == 0, name
        assert started[name] >= when(init["FinishedAt"]), f"{name} started before init ended"
    # The gateway waits for every model service to be healthy (depends_on), so it starts
    # after each has logged its model ready; Prometheus waits for the gateway.
    for name in MODEL_SERVICES:
        found = re.search(
            rf"^\S+\s+\|\s+(\S+ \S+),(\d+) INFO genserve.service .*{name}: model .* ready$",
            stack.logs(name),
            re.M,
        )
        assert found, f"{name}: no 'model ready' line"
        ready = when(found[1].replace(" ", "T") + "." + found[2] + "Z")  # the container's UTC
        assert started["gateway"] > ready > started[name], name
    assert started["prometheus"] > started["gateway"]
    assert not stack.compose("ps", "-q", "grafana").split(), "Grafana is not run here"
    # Only the gateway is reachable from the host, on the ports asked for.
    ports = stack.inspect("gateway")["NetworkSettings"]["Ports"]
    assert ports["3000/tcp"][0]["HostPort"] == str(stack.http_port)
    assert ports["3001/tcp"][0]["HostPort"] == str(stack.grpc_port)
    for name in (*MODEL_SERVICES, "prometheus"):
        assert not any(stack.inspect(name)["NetworkSettings"]["Ports"].values()), name
    r = httpx.get(stack.url + "/v2/health/ready", timeout=5)
    assert r.status_code == 200


def test_non_root_read_only_models_and_clean_logs(stack: Stack) -> None:
    for name in (*MODEL_SERVICES, "gateway"):
        assert stack.exec(name, "id", "-u").strip() == str(UID), name
    for name in MODEL_SERVICES:
        # The models volume is mounted read-only in every model service.
        denied = stack.exec(name, "touch", "/models/x", check=False)
        assert denied == "" and "x" not in stack.exec(name, "ls", "/models").split(), name
    listing = stack.exec("gan", "ls", "-ln", "/models").splitlines()
    folders = [line.split() for line in listing if line.startswith("d")]
    assert sorted(f[-1] for f in folders) == sorted(MODEL_SERVICES)
    assert all(f[2] == str(UID) for f in folders), "seeded by init as the non-root user"
    # The keys file holds hashes only; the metrics key is readable by Prometheus (nobody).
    keys = json.loads(stack.exec("gateway", "cat", "/run/secrets/keys.json"))
    assert {k["name"] for k in keys["keys"]} == {"admin", "prometheus"}
    assert stack.key not in json.dumps(keys)
    assert stack.exec("prometheus", "cat", "/run/secrets/metrics_key").strip()
    for name in SERVICES:
        log = stack.logs(name)
        for bad in ("Traceback", "Permission denied", "Read-only file system", "PermissionError"):
            assert bad not in log, f"{name}: {bad}\n{log[-3000:]}"


# -- every model, REST and OIP v2 over HTTP and gRPC, with the init service's key ------


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_model_over_rest(stack: Stack, kind: kinds.ModelKind) -> None:
    assert kind.example is not None
    with httpx.Client(base_url=stack.url, headers=stack.headers(), timeout=120) as client:
        r = client.post(kind.example.path, json=kind.example.body)
        assert r.status_code == 200, r.text
        if kind.example.body.get("format") == "png":
            assert r.headers["content-type"] == "image/png"
            assert r.content.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert r.json(), r.text
        assert r.headers["x-request-id"]
        # Bad input is a 400 naming the field, from inside the containers too.
        field = next(iter(kind.example.body))
        bad = client.post(kind.example.path, json={**kind.example.body, field: {"no": 1}})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == field, bad.text
        listed = client.get("/v1/models").json()
        assert kind.name in json.dumps(listed)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_model_over_oip_http_and_grpc(stack: Stack, kind: kinds.ModelKind) -> None:
    assert kind.example is not None
    headers = stack.headers()
    http = triton_http.InferenceServerClient(f"127.0.0.1:{stack.http_port}")
    grpc = triton_grpc.InferenceServerClient(stack.grpc)
    try:
        assert http.is_model_ready(kind.name, headers=dict(headers))
        assert grpc.is_model_ready(kind.name, headers=dict(headers))
        metadata = http.get_model_metadata(kind.name, headers=dict(headers))
        names = {o["name"] for o in metadata["outputs"]}
        assert names
        via_http = http.infer(
            kind.name,
            inputs(triton_http, kind.example),
            parameters=kind.example.parameters,
            headers=dict(headers),  # (tritonclient's HTTP client adds to the dict it is given)
        )
        via_grpc = grpc.infer(
            kind.name,
            inputs(triton_grpc, kind.example),
            parameters=kind.example.parameters,
            headers=dict(headers),
        )
        for name in names:
            a, b = via_http.as_numpy(name), via_grpc.as_numpy(name)
            if a is None and b is None:
                continue  # an output the example does not ask for
            assert a is not None and b is not None, name
            assert a.shape == b.shape and a.size > 0, name
            if a.dtype != np.object_:
                np.testing.assert_array_equal(a, b)  # the same seed, the same bytes
    finally:
        http.close()
        grpc.close()


def test_no_key_is_401_everywhere(stack: Stack) -> None:
    kind = KINDS[0]
    assert kind.example is not None
    r = httpx.post(stack.url + kind.example.path, json=kind.example.body, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["field"] == "authorization", r.text
    r = httpx.post(
        stack.url + kind.example.path,
        json=kind.example.body,
        headers={"authorization": "Bearer not-a-key"},
        timeout=30,
    )
    assert r.status_code == 401, r.text
    http = triton_http.InferenceServerClient(f"127.0.0.1:{stack.http_port}")
    with pytest.raises(InferenceServerException, match="401"):
        http.infer(kind.name, inputs(triton_http, kind.example))
    http.close()
    grpc = triton_grpc.InferenceServerClient(stack.grpc)
    with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
        grpc.infer(kind.name, inputs(triton_grpc, kind.example))
    grpc.close()
    # The gateway's metrics need a key with the metrics scope; the admin key has it.
    assert httpx.get(stack.url + "/metrics", timeout=10).status_code == 401
    r = httpx.get(stack.url + "/metrics", headers=stack.headers(), timeout=10)
    assert r.status_code == 200 and "genserve_" in r.text


# -- Prometheus, in its container ------------------------------------------------------


def prometheus_api(stack: Stack, path: str) -> Any:
    text = stack.exec("prometheus", "wget", "-q", "-O", "-", f"http://127.0.0.1:9090{path}")
    body = json.loads(text)
    assert body["status"] == "success", body
    return body["data"]


def test_prometheus_scrapes_every_target_and_evaluates_the_rules(stack: Stack) -> None:
    expected = {"gateway", *MODEL_SERVICES}
    deadline = time.monotonic() + 90  # scrape and evaluation interval: 15 s
    while True:
        targets = prometheus_api(stack, "/api/v1/targets?state=active")["activeTargets"]
        health = {t["labels"]["service"]: (t["health"], t["lastError"]) for t in targets}
        groups = prometheus_api(stack, "/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        evaluated = [r for r in rules if not r["lastEvaluation"].startswith("0001-")]
        up = set(health) == expected and all(h == "up" for h, _ in health.values())
        # The requests made by the tests above, by route, once a scrape has taken them.
        query = "/api/v1/query?query=sum(genserve_gateway_requests_total)"
        requests = prometheus_api(stack, query)["result"]
        counted = bool(requests) and float(requests[0]["value"][1]) > 0
        done = up and rules and len(evaluated) == len(rules) and counted
        if done or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert set(health) == expected, health
    assert all(h == "up" for h, _ in health.values()), health
    assert rules and len(evaluated) == len(rules), "every rule evaluated"
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    result = prometheus_api(stack, "/api/v1/query?query=up")["result"]
    assert {r["metric"]["service"]: r["value"][1] for r in result} == dict.fromkeys(expected, "1")
    assert counted, f"the gateway's request counters never reached Prometheus: {requests}"


# -- a model container dies under load -------------------------------------------------


@dataclass
class Answer:
    sent: float
    took: float
    status: int
    retry_after: str | None
    code: str | None


def test_a_killed_model_container_is_503_then_comes_back(stack: Stack) -> None:
    """SIGKILL to the gan container's init process from the host, what ``docker kill``
    sends. (``docker kill`` itself marks the container as stopped by hand, and Docker's
    restart policy then leaves it down; a crash or the OOM killer is what the policy is
    for, and this is one.)"""
    kind = kinds.get("gan")
    assert kind.example is not None
    example = kind.example
    gateway_before = stack.inspect("gateway")
    before = stack.inspect("gan")
    answers: list[Answer] = []
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(base_url=stack.url, headers=stack.headers(), timeout=10) as client:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    r = client.post(example.path, json=example.body)
                except httpx.HTTPError:
                    answers.append(Answer(sent, time.monotonic() - sent, 0, None, None))
                    continue
                code = r.json()["error"]["code"] if r.status_code >= 400 else None
                took = time.monotonic() - sent
                answers.append(
                    Answer(sent, took, r.status_code, r.headers.get("retry-after"), code)
                )
                time.sleep(0.15)  # about 6 a second: under the key's rate limit (10 a second)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        time.sleep(2)
        killed = time.monotonic()
        os.kill(before["State"]["Pid"], signal.SIGKILL)
        deadline = killed + 240
        while time.monotonic() < deadline:
            after_kill = [a for a in answers if a.sent > killed]
            if any(a.status == 503 for a in after_kill) and after_kill[-1].status == 200:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        worker.join(timeout=15)
    before_kill = [a for a in answers if a.sent + a.took < killed]
    after_kill = [a for a in answers if a.sent + a.took >= killed]
    assert before_kill and all(a.status == 200 for a in before_kill)
    statuses = {a.status for a in after_kill}
    assert statuses <= {200, 503}, [a for a in after_kill if a.status not in (200, 503)]
    failed = [a for a in after_kill if a.status == 503]
    assert failed, "the dead service was noticed"
    first = failed[0]
    # Callers learn at once: the first 503 within a second of the kill, none slow.
    assert first.sent + first.took - killed < 1.0, first
    assert max(a.took for a in failed) < 1.0, max(failed, key=lambda a: a.took)
    assert all(a.retry_after and int(a.retry_after) >= 1 for a in failed)
    assert {a.code for a in failed} <= {"backend_unavailable", "not_ready"}, failed[:3]
    # Docker's restart policy brought the same container back; the route answers again
    # without anyone touching the gateway.
    after = stack.inspect("gan")
    assert after["Id"] == before["Id"]
    assert after["RestartCount"] == before["RestartCount"] + 1
    assert after_kill[-1].status == 200, "the route answers again"
    back = next(a for a in after_kill if a.sent > first.sent and a.status == 200)
    stack.report["fault"] = {
        "first_503_after_kill_s": round(first.sent + first.took - killed, 3),
        "slowest_503_s": round(max(a.took for a in failed), 3),
        "answered_200_again_after_s": round(back.sent - killed, 1),
        "503s": len(failed),
    }
    gateway_after = stack.inspect("gateway")
    assert gateway_after["Id"] == gateway_before["Id"]
    assert gateway_after["State"]["StartedAt"] == gateway_before["State"]["StartedAt"]
    assert gateway_after["RestartCount"] == gateway_before["RestartCount"]


# -- up again: init seeds once ---------------------------------------------------------


def test_up_again_changes_nothing_and_init_seeds_once(stack: Stack) -> None:
    ids = {name: stack.container_id(name) for name in SERVICES if name != "init"}
    stack.compose("up", "-d", "--no-build", *SERVICES, timeout=300)
    for name, cid in ids.items():
        assert stack.container_id(name) == cid, f"{name} was recreated"
    log = stack.logs("init")
    assert len(re.findall(r"the admin API key \(shown once\)", log)) == 1, log
    assert "already set" in log and "already exists" in log, log
    kind = KINDS[0]
    assert kind.example is not None
    r = httpx.post(
        stack.url + kind.example.path,
        json=kind.example.body,
        headers=stack.headers(),
        timeout=60,
    )
    assert r.status_code == 200, "the first key still works"


# -- images ----------------------------------------------------------------------------


def test_image_sizes_and_no_torch_when_serving(stack: Stack) -> None:
    image = stack.env["GENSERVE_IMAGE"]
    sizes = {}
    for name in (image, stack.env.get("PROMETHEUS_IMAGE", "")):
        if name:
            sizes[name] = int(docker("image", "inspect", "--format", "{{.Size}}", name))
    stack.report["image_bytes"] = sizes
    probe = (
        "import importlib.util as u, sys; "
        "bad = [m for m in ('torch', 'transformers', 'diffusers', 'onnxscript') "
        "if u.find_spec(m)]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = docker("run", "--rm", "--entrypoint", "python", image, "-c", probe)
    assert out.strip() == "[]"
    listed = docker("run", "--rm", "--entrypoint", "python", image, "-m", "pip", "list")
    assert not re.search(r"^(torch|nvidia-(?!ml-py))\S*\s", listed, re.M | re.I), listed
    assert re.search(r"^onnxruntime\s", listed, re.M)
    assert sizes[image] < 1_500_000_000, "the CPU image stays small"


# -- stop and down ---------------------------------------------------------------------


def test_stop_is_graceful_and_down_leaves_nothing(stack: Stack) -> None:
    """SIGTERM reaches every server (tini is PID 1 and passes it on): each drains and
    stops in seconds (measured 0.4 to 9 s), far inside its stop_grace_period (30 to
    330 s), and is never killed when that runs out (exit 137). Each is stopped alone,
    so its time is its own."""
    stops = {}
    for name in ("gateway", "prometheus", *MODEL_SERVICES):
        started = time.monotonic()
        stack.compose("stop", name, timeout=400)
        stops[name] = round(time.monotonic() - started, 1)
        state = stack.inspect(name)["State"]
        assert state["ExitCode"] != 137 and not state["OOMKilled"], (name, state)
        assert stops[name] < 30, (name, stops[name])
    stack.report["stop_s"] = stops
    started = time.monotonic()
    stack.compose("down", "-v", "--remove-orphans", timeout=400)
    stack.report["down_s"] = round(time.monotonic() - started, 1)
    assert leftovers() == {"container": [], "network": [], "volume": []}, PROJECT
