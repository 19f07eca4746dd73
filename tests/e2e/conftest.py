"""Start real BentoML services on loopback ports for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from genserve.config import PROJECT_ROOT
from tests.conftest import MODELS_DIR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, target: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                target,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, "GENSERVE_MODELS_DIR": str(MODELS_DIR), **env},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ready_seconds = self._wait_ready(timeout=90)

    def _wait_ready(self, timeout: float) -> float:
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"not ready in {timeout}s: {self.log.read_text()[-3000:]}")

    def pids(self) -> list[int]:
        """The server's processes: the arbiter and its workers."""
        arbiter = psutil.Process(self.proc.pid)
        return [arbiter.pid, *(p.pid for p in arbiter.children(recursive=True))]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log_file.close()


def _serve(factory: pytest.TempPathFactory, name: str, target: str) -> Iterator[Server]:
    """A session's server, batching with a generous wait so concurrent tests share calls."""
    log = factory.mktemp("logs") / f"{name}.log"
    server = Server(target, {f"GENSERVE_{name.upper()}_MAX_LATENCY_MS": "30"}, log)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gan_server(tmp_path_factory: pytest.TempPathFactory, gan_model_dir: Path) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "gan", "services.gan:GanService")


@pytest.fixture(scope="session")
def translation_server(
    tmp_path_factory: pytest.TempPathFactory, translation_model_dir: Path
) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "translation", "services.translation:TranslationService")


@pytest.fixture(scope="session")
def imagegen_server(
    tmp_path_factory: pytest.TempPathFactory, imagegen_model_dir: Path
) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "imagegen", "services.imagegen:ImagegenService")
