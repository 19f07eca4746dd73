"""Chaos under load: while Locust runs the product mix through `genserve serve`, one model
service is killed (SIGKILL to its server and its worker), and later stopped (SIGTERM).

SIGKILL: its callers get 503 within a second, the other models never fail, the supervisor
brings it back, and its errors stop within its load time plus 30 s. SIGTERM: no request
fails except those refused at once with 503 (the drain's shutting_down, then the closed port).
Callers of every model are sampled by request loops beside the load, each request timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import httpx
import psutil
import pytest

from genserve import kinds
from genserve.config import PROJECT_ROOT
from genserve.ops.launcher import wait_ready
from tests.conftest import MODELS_DIR
from tests.e2e.conftest import free_port
from tests.e2e.test_launcher import OFFSETS, _busy, _listens

pytestmark = pytest.mark.e2e

VICTIM = "gan"
AT_ONCE_S = 1.0


@dataclass(frozen=True)
class Call:
    model: str
    sent: float  # monotonic
    seconds: float
    status: int  # 0: no answer at all
    code: str


class Callers:
    """One request loop per model kind through the gateway, every call recorded."""

    def __init__(self, url: str) -> None:
        self.url, self.calls, self.stopping = url, [], threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(k,), daemon=True) for k in kinds.kinds()
        ]

    def _loop(self, kind: kinds.ModelKind) -> None:
        assert kind.example is not None
        with httpx.Client(timeout=30) as client:
            while not self.stopping.is_set():
                sent = time.monotonic()
                try:
                    r = client.post(self.url + kind.example.path, json=kind.example.body)
                    status = r.status_code
                    code = "" if status == 200 else r.json().get("error", {}).get("code", "")
                except httpx.HTTPError as exc:
                    status, code = 0, type(exc).__name__
                self.calls.append(Call(kind.name, sent, time.monotonic() - sent, status, code))
                time.sleep(0.05)

    def __enter__(self) -> Callers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=60)

    def of(self, model: str, since: float, until: float = float("inf")) -> list[Call]:
        return [c for c in self.calls if c.model == model and since <= c.sent < until]

    def wait_for(self, model: str, since: float, timeout: float) -> float:
        """When the first 200 of ``model`` sent after ``since`` was sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = [c.sent for c in self.of(model, since) if c.status == 200]
            if ok:
                return min(ok)
            time.sleep(0.2)
        raise AssertionError(f"{model} did not come back within {timeout} s")


def test_a_model_service_killed_and_stopped_under_load() -> None:
    base = free_port()
    while base + 12 > 65535 or any(_busy(base + i) for i in OFFSETS):
        base = free_port()
    env = {
        **os.environ,
        "GENSERVE_MODELS_DIR": str(MODELS_DIR),
        "GENSERVE_GATEWAY_MAX_IN_FLIGHT_PER_CALLER": "100000",
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "genserve.cli", "serve", "--port-base", str(base)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{base}"
    port = base + kinds.get(VICTIM).port_offset
    locust = None
    try:
        wait_ready(url, serve, 180, "/v2/health/ready")
        locust = subprocess.Popen(
            [sys.executable, "-m", "loadtests", "--profile", "mix", "--url", url,
             "--grpc", f"127.0.0.1:{base + 1}", "--seconds", "150", "--quiet",
             "--out", str(PROJECT_ROOT / "build" / "loadtests" / "chaos")],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        with Callers(url) as callers:
            time.sleep(8)  # the load is on
            started = time.monotonic()

            # SIGKILL: the server and its worker, at once.
            server = next(p for p in psutil.Process(serve.pid).children() if _listens(p, port))
            victims = [server, *server.children(recursive=True)]
            for p in victims:
                p.kill()
            killed = time.monotonic()
            back = callers.wait_for(VICTIM, killed + 0.5, timeout=90)
            time.sleep(3)
            recovered = time.monotonic()

            # SIGTERM: the server drains its worker and exits; the supervisor restarts it.
            server = next(p for p in psutil.Process(serve.pid).children() if _listens(p, port))
            os.killpg(server.pid, signal.SIGTERM)
            stopped = time.monotonic()
            callers.wait_for(VICTIM, stopped + 2, timeout=90)
            time.sleep(3)
            ended = time.monotonic()

        # The others never failed, before, during or after.
        for kind in kinds.names():
            if kind != VICTIM:
                calls = callers.of(kind, started, ended)
                assert calls and all(c.status == 200 for c in calls), [
                    c for c in calls if c.status != 200
                ][:5]
        # SIGKILL: every failure a 503 at once; back within its load time plus 30 s, and
        # no error once it is back.
        during = [c for c in callers.of(VICTIM, killed, back) if c.status != 200]
        assert during, "no call noticed the kill"
        late = [c for c in during if c.status != 503 or c.seconds > AT_ONCE_S]
        assert not late, late[:5]
        assert back - killed < 30 + 30
        after = callers.of(VICTIM, back, stopped)
        assert after and all(c.status == 200 for c in after), [c for c in after if c.status != 200][
            :5
        ]
        # SIGTERM: nothing fails but 503s answered at once.
        calls = callers.of(VICTIM, recovered, ended)
        failed = [c for c in calls if c.status != 200]
        assert all(c.status == 503 and c.seconds <= AT_ONCE_S for c in failed), failed[:5]
        assert [c for c in calls if c.sent > stopped and c.status == 200]
        metrics = httpx.get(f"http://127.0.0.1:{base + 2}/metrics").text
        assert f'genserve_service_restarts_total{{service="{VICTIM}"}} 2.0' in metrics
    finally:
        if locust is not None:
            locust.send_signal(signal.SIGINT)
            try:
                locust.wait(timeout=30)
            except subprocess.TimeoutExpired:
                locust.kill()
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=90)
