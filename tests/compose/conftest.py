"""The docker-compose stack, built and run for real (``make compose-test``).

One stack per session, from the repository's own docker-compose.yml (the CPU stack users
run), under a project name of its own and on free host ports. It is brought down with
``down -v`` at the end whatever happens, and the last test checks that nothing is left.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from genserve import kinds
from genserve.config import PROJECT_ROOT
from genserve.ops.launcher import free_port

PROJECT = "genserve-ci"
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
MODEL_SERVICES = tuple(kinds.names())
# Every service but Grafana, which cannot be had here (no image, no Debian package); it
# is started by nothing else, so naming the others leaves it out.
SERVICES = ("init", *MODEL_SERVICES, "gateway", "prometheus")
REPORT = PROJECT_ROOT / "build" / "compose-test" / "report.json"
UP_TIMEOUT_S = 600.0


def compose_command() -> list[str]:
    """``GENSERVE_COMPOSE`` if set, else Compose v2 (``docker compose``) where the plugin
    is installed, else Compose v1 (``docker-compose``)."""
    if os.environ.get("GENSERVE_COMPOSE"):
        return shlex.split(os.environ["GENSERVE_COMPOSE"])
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if v2.returncode == 0:
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    assert found, "no Docker Compose: make compose-test installs Debian's docker-compose"
    return [found]


def run(cmd: list[str], timeout: float = 120.0, check: bool = True) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{shlex.join(cmd)}: exit {done.returncode}\n{done.stderr[-4000:]}")
    return done.stdout


def docker(*args: str, timeout: float = 120.0, check: bool = True) -> str:
    return run(["docker", *args], timeout=timeout, check=check)


def leftovers() -> dict[str, list[str]]:
    """The project's containers, networks and volumes that still exist."""
    label = f"label=com.docker.compose.project={PROJECT}"
    return {
        what: docker(
            what, "ls", *(["-a"] if what == "container" else []), "-q", "--filter", label
        ).split()
        for what in ("container", "network", "volume")
    }


@dataclass
class Stack:
    http_port: int
    grpc_port: int
    compose_cmd: list[str]
    env: dict[str, str]
    key: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def compose(self, *args: str, timeout: float = 120.0, check: bool = True) -> str:
        cmd = [*self.compose_cmd, "-p", PROJECT, "-f", str(COMPOSE_FILE), *args]
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env,
            cwd=PROJECT_ROOT,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{shlex.join(cmd)}: exit {done.returncode}\n{done.stdout[-3000:]}\n"
                f"{done.stderr[-3000:]}"
            )
        return done.stdout

    def container_id(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).split()
        assert len(ids) == 1, (service, ids)
        return ids[0]

    def inspect(self, service: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(docker("inspect", self.container_id(service)))
        return data[0]

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service)

    def exec(self, service: str, *cmd: str, check: bool = True) -> str:
        return self.compose("exec", "-T", service, *cmd, check=check)

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


def admin_key(init_log: str) -> str:
    found = re.findall(r"the admin API key \(shown once\): (\S+)", init_log)
    assert len(found) == 1, f"the init service prints the admin key once:\n{init_log}"
    return found[0]


def wait_ready(url: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url}: not ready after {timeout} s")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    image = os.environ.get("GENSERVE_IMAGE", "genserve:cpu")
    docker("image", "inspect", image)  # built by make compose-test before pytest starts
    env = {
        **os.environ,
        "GENSERVE_IMAGE": image,
        "GENSERVE_HTTP_PORT": str(free_port()),
        "GENSERVE_GRPC_PORT": str(free_port()),
    }
    s = Stack(
        http_port=int(env["GENSERVE_HTTP_PORT"]),
        grpc_port=int(env["GENSERVE_GRPC_PORT"]),
        compose_cmd=compose_command(),
        env=env,
    )
    s.report["compose"] = run([*s.compose_cmd, "version"]).splitlines()[0]
    s.compose("down", "-v", "--remove-orphans", timeout=600)  # a previous run's leftovers
    try:
        started = time.monotonic()
        # The images exist (built by make); compose must not build or pull them.
        s.compose("up", "-d", "--no-build", *SERVICES, timeout=UP_TIMEOUT_S)
        s.report["up_s"] = round(time.monotonic() - started, 1)
        s.report["ready_s"] = round(wait_ready(s.url + "/readyz", 120) + s.report["up_s"], 1)
        s.key = admin_key(s.logs("init"))
        yield s
    finally:
        try:
            s.compose("down", "-v", "--remove-orphans", timeout=600, check=False)
        finally:
            REPORT.parent.mkdir(parents=True, exist_ok=True)
            REPORT.write_text(json.dumps(s.report, indent=2) + "\n")
