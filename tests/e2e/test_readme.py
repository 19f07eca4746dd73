"""Every curl example in the README works as written, against the gateway as `make up`
runs it (authentication off), with only the host and port changed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from genserve.config import PROJECT_ROOT
from tests.e2e.conftest import Server, free_port, gateway_env, model_servers

pytestmark = pytest.mark.e2e


def readme_curls() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        current: list[str] | None = None
        for line in block.splitlines():
            if line.startswith("curl "):
                current = [line]
                commands.append(current)
            elif current is not None and line.startswith(" "):
                current.append(line)  # a continued line or a quoted body going on
            else:
                current = None
    return ["\n".join(c) for c in commands]


@pytest.fixture(scope="module")
def open_gateway(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    urls = {name: server.url for name, server in model_servers(request).items()}
    env = gateway_env(urls, free_port(), GENSERVE_GATEWAY_AUTH="false")
    server = Server("services.gateway:Gateway", env, tmp_path_factory.mktemp("logs") / "gw.log")
    yield server
    server.stop()


def test_every_curl_example_works(open_gateway: Server, tmp_path) -> None:
    commands = readme_curls()
    assert len(commands) >= 15
    host = open_gateway.url.removeprefix("http://")
    job_id = None
    for command in commands:
        command = command.replace("localhost:3000", host).replace("curl -s", "curl -sS --fail", 1)
        if "JOB_ID" in command:
            assert job_id, "a job example must come before its status"
            command = command.replace("JOB_ID", job_id)
            if "/result" in command:  # a person polls until it is done
                _wait_for_job(open_gateway, job_id)
        out = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, timeout=120
        )
        assert out.returncode == 0, (command, out.stderr.decode())
        written = re.search(r"-o (\S+)", command)
        produced = (tmp_path / written.group(1)).read_bytes() if written else out.stdout
        assert produced, command
        found = re.search(rb'"id":"([0-9a-f]+)"', out.stdout)
        if "/v1/jobs " in command + " " and found:
            job_id = found.group(1).decode()


def _wait_for_job(gateway: Server, job_id: str) -> None:
    import time

    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = httpx.get(f"{gateway.url}/v1/jobs/{job_id}").json()["status"]
        if status not in ("queued", "running"):
            return
        time.sleep(0.1)
