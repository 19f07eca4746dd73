"""`genserve serve` (what `make up` runs) brings the whole graph up, keeps it up (a
service that dies is restarted) and takes it down in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from genserve import cpus, kinds
from genserve.config import PROJECT_ROOT
from genserve.ops.launcher import model_services
from tests.conftest import MODELS_DIR
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e


OFFSETS = (0, 1, 2, 10, 11, 12)  # gateway, its gRPC, supervisor, gan, translation, imagegen


def test_serve_starts_every_service_and_stops_them() -> None:
    base = free_port()
    while base + 12 > 65535 or any(_busy(base + i) for i in OFFSETS):
        base = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "genserve.cli", "serve", "--port-base", str(base)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "GENSERVE_MODELS_DIR": str(MODELS_DIR)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops everything" in line or proc.poll() is not None:
                break
        text = "".join(lines)
        assert "genserve is up" in text, text[-2000:]
        assert "authentication OFF" in text
        for what in ("playground", "REST", "gRPC", "metrics"):
            assert what in text, what
        assert f"http://localhost:{base}/metrics" in text and f"localhost:{base + 1}" in text
        for offset in (0, 10, 11, 12):
            assert httpx.get(f"http://127.0.0.1:{base + offset}/readyz").status_code == 200
        # Through the front door, to each model.
        url = f"http://127.0.0.1:{base}"
        r = httpx.post(url + "/v1/translate", json={"texts": ["I am a student."]}, timeout=30)
        assert r.json()["translations"][0]["text"] == "Je suis étudiant."
        assert httpx.post(url + "/v1/samples", json={"seed": 1}).status_code == 200
        r = httpx.post(url + "/v1/images", json={"prompt": "a small red circle", "steps": 2})
        assert r.status_code == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4
        # Each model service runs on its core budget, and ONNX Runtime sizes its threads
        # to it; the gateway is not pinned.
        budget = {s.name: list(s.cpus or ()) for s in model_services()}
        assert "CPUs" in text and all(cpus.format_list(b) in text for b in budget.values())
        for name, wanted in budget.items():
            port = base + kinds.get(name).port_offset
            owner = next(c for c in children if _listens(c, port))
            for p in (owner, *owner.children(recursive=True)):
                assert p.cpu_affinity() == wanted, (name, p.cmdline())
            worker = owner.children(recursive=True)[-1]
            assert worker.num_threads() < 16  # not a pool per machine core
        # A service that dies is restarted; the others keep serving meanwhile. Only its
        # server is killed: its worker (in a session of its own) must not live on as an
        # orphan holding the port.
        gan = next(c for c in children if _listens(c, base + 10))
        workers = gan.children(recursive=True)
        gan.kill()
        killed = time.monotonic()
        r = httpx.post(url + "/v1/samples", json={"seed": 1}, timeout=5)
        while r.status_code == 200 and time.monotonic() - killed < 1:  # probe's turn
            r = httpx.post(url + "/v1/samples", json={"seed": 1}, timeout=5)
        assert r.status_code == 503 and time.monotonic() - killed < 1.5, r.text
        assert r.headers["retry-after"]
        t = httpx.post(url + "/v1/translate", json={"texts": ["I am a student."]}, timeout=30)
        assert t.status_code == 200
        while time.monotonic() - killed < 60 and r.status_code != 200:
            time.sleep(0.25)
            r = httpx.post(url + "/v1/samples", json={"seed": 1}, timeout=5)
        assert r.status_code == 200, "the supervisor brought the GAN service back"
        assert not [w for w in workers if w.is_running() and w.status() != "zombie"]
        metrics = httpx.get(f"http://127.0.0.1:{base + 2}/metrics").text
        assert 'genserve_service_restarts_total{service="gan"} 1.0' in metrics
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def _listens(process: psutil.Process, port: int) -> bool:
    try:
        return any(c.laddr.port == port for c in process.net_connections("tcp"))
    except psutil.Error:
        return False


def _busy(port: int) -> bool:
    """Whether the port cannot be bound here: listened on, or held by any socket (a
    client's ephemeral port too, which a GET would not notice)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
