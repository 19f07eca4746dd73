"""Start-up: while a service's model loads, it is alive and not ready, and its routes
answer 503 not_ready at once; the first request after ready succeeds."""

from __future__ import annotations

import time

import httpx
import pytest

from genserve import kinds
from genserve.ops.launcher import spawn, stop
from tests.conftest import MODELS_DIR
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e


def _status(url: str) -> int | str:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def test_alive_and_not_ready_while_the_model_loads(imagegen_model_dir) -> None:
    kind = kinds.get("imagegen")  # the slowest to load: the widest window to see
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn(
        kind.service, "127.0.0.1", port, {"GENSERVE_MODELS_DIR": str(MODELS_DIR)}, quiet=True
    )
    try:
        loading, during = False, []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            live, ready = _status(url + "/livez"), _status(url + "/readyz")
            if live == 200 and ready == 503:
                loading = True
                r = httpx.get(url + "/v1/model", timeout=2)
                if r.status_code != 200:  # (200 if the load finished in between)
                    code = r.json()["error"]["code"]
                    during.append((r.status_code, code, r.headers.get("retry-after")))
            if ready == 200:
                break
            time.sleep(0.01)
        assert loading, "never saw it alive and not ready"
        # What a model route answered while loading: 503 not_ready with Retry-After.
        assert all(d == (503, "not_ready", "1") for d in during), during
        first = httpx.post(
            url + "/v1/images", json={"prompt": "a red circle", "steps": 2}, timeout=60
        )
        assert first.status_code == 200, first.text
    finally:
        stop(proc)
