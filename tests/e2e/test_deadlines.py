"""Work is never run for nobody: a request still queued at its route's deadline fails
within the deadline plus 10% and is dropped, and a caller that disconnects (from the
service, or from the gateway in front of it) leaves the queue; both counted by
genserve_requests_dropped_total, and neither ever reaches the model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from genserve import kinds
from tests.e2e.conftest import Server, gateway_env

pytestmark = pytest.mark.e2e

DEADLINE_S = 2.5
SLOW = {"prompt": "a red circle", "steps": 150, "n": 4, "width": 64, "height": 64, "seed": 1}
QUICK = {"prompt": "a blue square", "steps": 2, "seed": 3}


@pytest.fixture
def imagegen(imagegen_model_dir, tmp_path) -> Iterator[Server]:
    env = {"GENSERVE_IMAGEGEN_DEADLINE_S": str(DEADLINE_S)}
    server = Server(kinds.get("imagegen").service, env, tmp_path / "imagegen.log")
    yield server
    server.stop()


def metric(server: Server, name: str, **labels: str) -> float:
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def model_calls(server: Server) -> float:
    """Model calls finished, once the one running (if any) has finished."""
    deadline = time.monotonic() + 60
    while metric(server, "genserve_batch_size_count") < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # anything queued would have started by now
    return metric(server, "genserve_batch_size_count")


def test_queued_past_the_deadline_fails_in_time_and_never_runs(imagegen: Server) -> None:
    url = imagegen.url + "/v1/images"
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(httpx.post, url, json=SLOW, timeout=60)
        time.sleep(0.5)  # the slow one is in the model
        sent = time.monotonic()
        late = httpx.post(url, json=QUICK, timeout=30)  # queued behind it
        waited = time.monotonic() - sent
        slow.result()
    assert late.status_code == 504, late.text
    assert late.json()["error"]["code"] == "deadline_exceeded"
    assert waited <= DEADLINE_S * 1.1
    assert metric(imagegen, "genserve_requests_dropped_total", reason="deadline") == 1
    assert model_calls(imagegen) == 1  # the slow call alone: the late one never ran


def test_a_caller_that_leaves_is_dropped_at_the_service_and_through_the_gateway(
    imagegen: Server, tmp_path
) -> None:
    env = gateway_env({"imagegen": imagegen.url}, 0, GENSERVE_GATEWAY_AUTH="false")
    gateway = Server("services.gateway:Gateway", env, tmp_path / "gw.log")
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.post, imagegen.url + "/v1/images", json=SLOW, timeout=60)
            time.sleep(0.5)
            for url in (imagegen.url, gateway.url):  # queued behind it, then gone
                with pytest.raises(httpx.ReadTimeout):
                    httpx.post(url + "/v1/images", json=QUICK, timeout=0.5)
            time.sleep(0.3)
            assert metric(imagegen, "genserve_queue_rows") == 0  # both left the queue
            slow.result()
        time.sleep(0.5)
        assert model_calls(imagegen) == 1
        assert metric(imagegen, "genserve_requests_dropped_total", reason="cancelled") == 2
    finally:
        gateway.stop()
