"""The gateway's OpenAPI document against the running gateway, by schemathesis: every
operation's generated requests (valid and invalid, boundary values, undocumented
methods, no or bad credentials, and the job routes chained by the document's links)
must get no 5xx, only documented statuses and content types, bodies and headers that
conform to the document, a 4xx for invalid input, and 405 with Allow for a method the
path does not have. tests/e2e/schemathesis.toml holds the run's settings and checks.

Schemathesis runs as its command line (``st run``) against the session's gateway: its
pytest loader for a server that a fixture starts (``schemathesis.pytest.from_fixture``)
fails on pytest 9 (it reads ``request.node._nodeid``, which pytest 9 removed). Bounded
to about a minute on two cores: 25 examples per operation and phase, and image requests
made small by tests/e2e/schemathesis_hooks.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genserve.config import PROJECT_ROOT
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).with_name("schemathesis.toml")


def _readable(out: str) -> str:
    """The report from its failures on, each line cut short (bodies run to 64 KiB)."""
    start = out.find("FAILURES")
    lines = out[start if start >= 0 else 0 :].splitlines()
    return "\n".join(line[:300] for line in lines)[-15000:]


def test_gateway_answers_as_its_openapi_document_says(
    gateway: Server, api_keys: dict[str, str]
) -> None:
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{gateway.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {api_keys['full']}",
        "--no-color",
    ]
    started = time.monotonic()
    # From the repository's root: the config's hooks path is relative to it.
    run = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    out = run.stdout + run.stderr
    assert run.returncode == 0, _readable(out)
    operations = re.search(r"Tested: (\d+)", out)
    cases = re.search(r"(\d+) generated", out)
    assert operations is not None and int(operations.group(1)) >= 19, _readable(out)
    print(  # the run's figures (pytest -rA shows them)
        f"schemathesis: {operations.group(1)} operations, "
        f"{cases.group(1) if cases else '?'} cases, {elapsed:.0f} s"
    )
