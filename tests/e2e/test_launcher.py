"""`genserve serve` (what `make up` runs) brings every service up and takes it down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from genserve.config import PROJECT_ROOT
from tests.conftest import MODELS_DIR
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e


def test_serve_starts_every_service_and_stops_them() -> None:
    base = free_port()
    while any(_busy(base + i) for i in range(3)):
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
        for i, name in enumerate(("gan", "translation", "imagegen")):
            assert f"http://127.0.0.1:{base + i}" in text
            assert httpx.get(f"http://127.0.0.1:{base + i}/readyz").status_code == 200, name
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def _busy(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=0.2)
        return True
    except httpx.HTTPError:
        return False
