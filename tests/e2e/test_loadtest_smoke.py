"""The load test suite (loadtests/) in its smoke profile against the session's gateway: every
user family sends requests through the real gateway for about 25 seconds, and the run
fails on an SLO breach (loadtests/slo.yaml, profile smoke)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genserve.config import PROJECT_ROOT
from loadtests.config import FAMILIES, FLOW, RATE_LIMITED_SUFFIX
from loadtests.slo import RouteStats, evaluate
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def family_of(request_type: str, name: str) -> str:
    """The user family that sends a request, from its row in Locust's CSV."""
    if request_type == "grpc":
        return "oip_grpc"
    if name.startswith("/v2/"):
        return "oip_http"
    if name.startswith("/v1/translate"):
        return "translation"
    if name.startswith(("/v1/images", "/v1/jobs")):
        return "images"
    if name.startswith(("/v1/samples", "/v1/interpolate")):
        return "gan"
    raise AssertionError(f"a request no family sends: {request_type} {name}")


def loadtest(*args: str, key: str = "", timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENSERVE_LOADTEST_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "loadtests", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_smoke_profile_meets_its_slos_with_every_family(
    gateway: Server, api_keys: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "smoke"
    started = time.monotonic()
    run = loadtest(
        "--profile",
        "smoke",
        "--url",
        gateway.url,
        "--grpc",
        gateway.grpc,  # type: ignore[attr-defined]
        "--out",
        str(out),
        "--quiet",
        key=api_keys["full"],
    )
    elapsed = time.monotonic() - started
    output = run.stdout[-8000:] + run.stderr[-4000:]
    assert run.returncode == 0, output
    assert elapsed < 150, f"the smoke run took {elapsed:.0f}s"

    served = dict.fromkeys(FAMILIES, 0)
    with (out / "locust_stats.csv").open() as f:
        for row in csv.DictReader(f):
            kind, name = row["Type"], row["Name"]
            if name == "Aggregated" or kind == FLOW or name.endswith(RATE_LIMITED_SUFFIX):
                continue
            served[family_of(kind, name)] += int(row["Request Count"]) - int(row["Failure Count"])
    assert all(served.values()), f"families without a served request: {served}\n{output}"
    assert (out / "report.html").stat().st_size > 0
    assert "SLO smoke (whole run): met" in (out / "verdict.txt").read_text()


def test_a_target_off_this_machine_is_refused_before_any_load() -> None:
    run = loadtest("--profile", "smoke", "--url", "http://192.0.2.1:3000", timeout=60)
    assert run.returncode == 2
    assert "not a loopback address" in run.stderr


def test_deliberate_429s_are_counted_apart_from_errors() -> None:
    rows = [
        RouteStats("POST", "/v1/samples [8 json]", 100, 1, 40.0),
        RouteStats("POST", "/v1/samples [8 json]" + RATE_LIMITED_SUFFIX, 300, 0, 1.0),
        RouteStats(FLOW, "/v1/jobs [submit to result]", 5, 5, 900.0),  # not a request
    ]
    slo = {"error_ratio": 0.02, "p95_ms": {"/v1/samples [8 json]": 50}}
    verdict = evaluate(slo, rows)
    assert verdict.ok, verdict.report("ok")
    assert (verdict.requests, verdict.errors, verdict.rate_limited) == (100, 1, 300)

    slo = {"error_ratio": 0.005, "p95_ms": {"/v1/samples [8 json]": 30}}
    breaches = evaluate(slo, rows).breaches
    assert breaches == [
        "error_ratio: 1.00% (1 of 100) > 0.50%, over by 0.50 points",
        "p95 /v1/samples [8 json]: 40 ms > 30 ms, over by 10 ms (+33%) (100 requests)",
    ]
