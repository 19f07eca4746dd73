"""SIGTERM to a model service: not ready at once, new work refused with 503 at once,
the work already taken (a running generation, a running job) finishes with 200, then the
process exits with nothing left behind."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from genserve import kinds
from genserve.ops.launcher import spawn, stop, wait_ready
from tests.conftest import MODELS_DIR
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

SLOW = {"prompt": "a red circle", "steps": 150, "n": 4, "seed": 1}


def test_sigterm_drains_then_exits(imagegen_model_dir) -> None:
    kind = kinds.get("imagegen")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"GENSERVE_MODELS_DIR": str(MODELS_DIR), "GENSERVE_IMAGEGEN_MAX_LATENCY_MS": "0"}
    proc = spawn(kind.service, "127.0.0.1", port, env, quiet=True)
    try:
        wait_ready(url, proc, timeout=90)
        family = psutil.Process(proc.pid).children(recursive=True)
        job = httpx.post(url + "/v1/jobs", json={**SLOW, "n": 1}, timeout=10).json()["id"]
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(httpx.post, url + "/v1/images", json=SLOW, timeout=120)
            time.sleep(0.5)  # it is in the model now
            os.killpg(proc.pid, signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(0.2)
            assert httpx.get(url + "/readyz", timeout=2).status_code == 503
            refused = httpx.post(url + "/v1/images", json=SLOW, timeout=2)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "shutting_down"
            assert refused.headers["retry-after"]
            assert time.monotonic() - signalled < 2  # at once, not after the work
            status = httpx.get(f"{url}/v1/jobs/{job}", timeout=2)
            assert status.status_code == 200  # a job's client can still follow it
            answer = running.result(timeout=120)
        assert answer.status_code == 200, answer.text  # the work taken finished
        assert len(answer.json()["images"]) == 4
        proc.wait(timeout=60)
        time.sleep(0.5)
        assert not [p for p in family if p.is_running() and p.status() != "zombie"]
    finally:
        stop(proc)


def test_gateway_sigterm_drains_http_and_grpc(request: pytest.FixtureRequest, tmp_path) -> None:
    """SIGTERM to the gateway: readiness false at once over HTTP and gRPC, new requests
    refused at once (503 with Retry-After; gRPC UNAVAILABLE), the open ones (one over
    each protocol) finish, then the gateway exits with no process left behind, though
    clients had stalled uploads open when it was told to stop (their bodies time out)."""
    import socket

    import numpy as np
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    from tests.e2e.conftest import Server, gateway_env, model_servers

    urls = {name: server.url for name, server in model_servers(request).items()}
    grpc_port = free_port()
    env = gateway_env(
        urls, grpc_port, GENSERVE_GATEWAY_AUTH="false", GENSERVE_SERVER_BODY_TIMEOUT_S="3"
    )
    gateway = Server("services.gateway:Gateway", env, tmp_path / "gw.log")
    family = [psutil.Process(p) for p in gateway.pids()]
    stalled = []
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    prompt = triton_grpc.InferInput("PROMPT", [1], "BYTES")
    prompt.set_data_from_numpy(np.array([b"a red circle"], dtype=object))
    try:
        wait_ready(gateway.url, gateway.proc, 30, "/v2/health/ready")
        with ThreadPoolExecutor(2) as pool:
            over_http = pool.submit(
                httpx.post, gateway.url + "/v1/images", json={**SLOW, "n": 2}, timeout=120
            )
            over_grpc = pool.submit(
                client.infer, "imagegen", [prompt], parameters={"steps": 150, "seed": 2}
            )
            for _ in range(5):  # uploads that never finish their body
                sock = socket.create_connection(("127.0.0.1", gateway.port))
                sock.sendall(
                    b"POST /v1/samples HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )
                stalled.append(sock)
            time.sleep(1.0)  # both are in the model now
            os.killpg(gateway.proc.pid, signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(0.3)
            assert httpx.get(gateway.url + "/readyz", timeout=2).status_code == 503
            assert httpx.get(gateway.url + "/v2/health/ready", timeout=2).status_code == 503
            assert not client.is_server_ready()
            refused = httpx.post(gateway.url + "/v1/samples", json={"seed": 1}, timeout=2)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "shutting_down"
            assert refused.headers["retry-after"]
            with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
                client.infer("imagegen", [prompt], parameters={"steps": 2})
            assert time.monotonic() - signalled < 3  # at once, not after the work
            answer = over_http.result(timeout=120)
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["images"]) == 2
            assert over_grpc.result(timeout=120).as_numpy("IMAGE") is not None
        gateway.proc.wait(timeout=60)
        time.sleep(0.5)
        assert not [p for p in family if p.is_running() and p.status() != "zombie"]
    finally:
        for sock in stalled:
            sock.close()
        client.close()
        gateway.stop()
