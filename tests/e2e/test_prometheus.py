"""A real Prometheus (Debian's) scrapes the running gateway and model services under a
short load, evaluates deploy/prometheus's rules, and answers every expression of every
Grafana dashboard panel and every rule with data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import yaml

from genserve.config import PROJECT_ROOT
from tests.e2e.conftest import Server, free_port

pytestmark = pytest.mark.e2e

DEPLOY = PROJECT_ROOT / "deploy"
GPU_METRICS = ("genserve_gpu_",)


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.stem}: {panel['title']}", target["expr"]))
    return out


def rule_exprs() -> list[tuple[str, str, bool]]:
    out = []
    for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule["alert"]
                out.append((name, rule["expr"], "alert" in rule))
    return out


def as_grafana_would(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$model", ".*")


def without_threshold(expr: str) -> str:
    """An alert's comparison as a 0/1 series: the expression returns data when its
    inputs do, firing or not ("a > 0.05" -> "a > bool 0.05")."""
    changed, n = re.subn(r" (>=|<=|==|!=|>|<) ", r" \1 bool ", expr, count=1)
    assert n == 1, f"an alert compares once: {expr}"
    return changed


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory,
    gateway: Server,
    gan_server: Server,
    translation_server: Server,
    imagegen_server: Server,
    api_keys: dict[str, str],
) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: make test installs Debian's prometheus"
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "metrics_key").write_text(api_keys["ops"])
    host = lambda s: s.url.removeprefix("http://")  # noqa: E731
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))],
        "scrape_configs": [
            {
                "job_name": "genserve-gateway",
                "authorization": {"type": "Bearer", "credentials_file": str(tmp / "metrics_key")},
                "static_configs": [{"targets": [host(gateway)], "labels": {"service": "gateway"}}],
            },
            {
                "job_name": "genserve-models",
                "static_configs": [
                    {"targets": [host(s)], "labels": {"service": name}}
                    for name, s in (
                        ("gan", gan_server),
                        ("translation", translation_server),
                        ("imagegen", imagegen_server),
                    )
                ],
            },
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(f"{url}/-/ready").status_code == 200, 30, tmp)
        _load(gateway, api_keys, seconds=8)
        time.sleep(3)  # the last scrapes and a rule evaluation after the load
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _wait(ok, seconds: float, tmp: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ok():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError((tmp / "prometheus.log").read_text()[-2000:])


def _load(gateway: Server, api_keys: dict[str, str], seconds: float) -> None:
    """Every route kind for a few seconds, errors and refusals included."""
    key = {"authorization": f"Bearer {api_keys['full']}"}
    grpc = triton_grpc.InferenceServerClient(gateway.grpc)  # type: ignore[attr-defined]
    seeds = triton_grpc.InferInput("SEED", [2], "INT64")
    seeds.set_data_from_numpy(np.array([1, 2], dtype=np.int64))
    prompt = {"prompt": "a small red circle at the top left on a blue background", "steps": 4}
    deadline = time.monotonic() + seconds

    def one_client(i: int) -> None:
        with httpx.Client(base_url=gateway.url, headers=key, timeout=60) as c:
            while time.monotonic() < deadline:
                c.post("/v1/translate", json={"texts": [f"The cat sees the dog {i}."]})
                c.post("/v1/samples", json={"seed": i, "n": 4})
                c.post("/v1/images", json=prompt)
                job = c.post("/v1/jobs", json=prompt).json()
                c.get(f"/v1/jobs/{job['id']}")
                c.post("/v1/samples", json={"n": 0})  # 400
                httpx.post(gateway.url + "/v1/samples", json={"seed": 1})  # 401
                grpc.infer("gan", [seeds], headers=dict(key))
                time.sleep(0.2)

    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def query(url: str, expr: str) -> list:
    r = httpx.get(f"{url}/api/v1/query", params={"query": expr})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


def test_every_target_is_scraped(prometheus: str) -> None:
    targets = httpx.get(f"{prometheus}/api/v1/targets").json()["data"]["activeTargets"]
    health = {t["labels"]["service"]: t["health"] for t in targets}
    assert health == {"gateway": "up", "gan": "up", "translation": "up", "imagegen": "up"}


def test_every_dashboard_expression_returns_data(prometheus: str) -> None:
    from genserve.resources import read_gpus

    has_gpu = bool(read_gpus())
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    empty = []
    for title, expr in exprs:
        result = query(prometheus, as_grafana_would(expr))
        if any(m in expr for m in GPU_METRICS) and not has_gpu:
            assert result == [], (title, "GPU series without a GPU?")
        elif not result:
            empty.append(title)
    assert not empty, empty


def test_every_rule_evaluates_and_returns_data(prometheus: str) -> None:
    groups = httpx.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == len(rule_exprs())
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    empty = []
    for name, expr, is_alert in rule_exprs():
        if not query(prometheus, without_threshold(expr) if is_alert else name):
            empty.append(name)
    assert not empty, empty
    # And the stack is healthy: nothing fires.
    alerts = httpx.get(f"{prometheus}/api/v1/alerts").json()["data"]["alerts"]
    assert [a for a in alerts if a["state"] == "firing"] == []
