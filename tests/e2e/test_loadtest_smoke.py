"""The load test suite (loadtests/) in its smoke profile against the session's gateway: every
user family sends requests through the real gateway for about 25 seconds, and the run
fails on an SLO breach (loadtests/slo.yaml, profile smoke). The same run checks that the
gateway's metrics tell the truth under load: its request counter moved by exactly what
Locust sent, route by route and outcome by outcome, and its latency histogram puts the
p95 where Locust measured it (see ``check_p95``).

The SLO p95s are judged multiplied by how much slower than a reference pace the models run
on this host now (tests/e2e/pace.py; 1 on a host at least that fast)."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from genserve.config import PROJECT_ROOT
from loadtests.config import FAMILIES, FLOW, RATE_LIMITED_SUFFIX, SLO_FILE, load_slo
from loadtests.slo import RouteStats, evaluate
from tests.e2e import pace
from tests.e2e.conftest import Server, model_servers

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


# -- the gateway's metrics against Locust's statistics -------------------------------------

REQUESTS = "genserve_gateway_requests"  # {route, method, status}
SECONDS = "genserve_gateway_request_duration_seconds"  # {route}, buckets in genserve/metrics.py
OUTCOMES = ("served", "429", "failed")
# The most the client may add to a route's requests on average, in ms, and the most the
# gateway's clock may run on after an HTTP answer has gone out (see check_p95).
CLIENT_MEAN_MS = 50.0
HTTP_LAG_MS = 10.0


@dataclass
class Scrape:
    counts: dict[tuple[str, str, str], int]  # (route, method, status) -> requests
    buckets: dict[str, dict[float, int]]  # route -> upper bound (s, +Inf) -> cumulative count
    sums: dict[str, float]  # route -> seconds observed


def scrape(url: str, key: str) -> Scrape:
    answer = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {key}"}, timeout=10)
    answer.raise_for_status()
    out = Scrape({}, {}, {})
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == f"{REQUESTS}_total":
                status = (labels["route"], labels["method"], labels["status"])
                out.counts[status] = round(sample.value)
            elif sample.name == f"{SECONDS}_bucket":
                bounds = out.buckets.setdefault(labels["route"], {})
                bounds[float(labels["le"])] = round(sample.value)
            elif sample.name == f"{SECONDS}_sum":
                out.sums[labels["route"]] = sample.value
    return out


def quiet_scrape(url: str, key: str) -> Scrape:
    """A scrape whose request counters a second scrape 0.3 s later finds unchanged: nothing
    else is hitting the gateway, and every request it answered is counted (an HTTP request
    is counted just after its answer is sent). /metrics itself is not counted."""
    last = scrape(url, key)
    for _ in range(10):
        time.sleep(0.3)
        now = scrape(url, key)
        if now.counts == last.counts:
            return now
        last = now
    raise AssertionError("the gateway's request counters keep moving: something else hits it")


def delta(before: Scrape, after: Scrape) -> Scrape:
    counts = {k: n - before.counts.get(k, 0) for k, n in after.counts.items()}
    buckets = {
        route: {le: n - before.buckets.get(route, {}).get(le, 0) for le, n in bounds.items()}
        for route, bounds in after.buckets.items()
    }
    moved = {route: b for route, b in buckets.items() if b.get(math.inf)}
    return Scrape(
        {k: n for k, n in counts.items() if n},
        moved,
        {route: after.sums[route] - before.sums.get(route, 0.0) for route in moved},
    )


@dataclass(frozen=True)
class LocustRow:
    """One row of Locust's statistics: its CSV, and its response times (locustfile's
    response_times.json, {ms as Locust rounds them: count})."""

    kind: str  # POST, GET, DELETE, grpc (FLOW rows are not requests)
    name: str
    requests: int
    failures: int
    p95_ms: int  # the CSV's 95% column
    total_ms: float  # the sum of its response times, unrounded (average x requests)
    response_times: dict[int, int]


def locust_rows(out: Path) -> list[LocustRow]:
    times = {
        (r["type"], r["name"]): {int(ms): n for ms, n in r["response_times"].items()}
        for r in json.loads((out / "response_times.json").read_text())
    }
    rows = []
    with (out / "locust_stats.csv").open() as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated" or row["Type"] == FLOW:
                continue
            key = (row["Type"], row["Name"])
            requests = int(row["Request Count"])
            rows.append(
                LocustRow(
                    *key,
                    requests,
                    int(row["Failure Count"]),
                    0 if row["95%"] == "N/A" else int(row["95%"]),
                    float(row["Average Response Time"]) * requests,
                    times[key],
                )
            )
    return rows


_OIP_PATH = re.compile(r"/v2/models/[^/{}]+(/infer)?")
_GRPC_METHOD = re.compile(r"[A-Z][A-Za-z]+")


def gateway_route(kind: str, name: str) -> tuple[str, str]:
    """The gateway's (route template, method label) that a Locust request name hits. REST
    names are the route template and a variant (``/v1/translate [8 texts]``); OIP HTTP
    names carry the model (``/v2/models/gan/infer``: route ``/v2/models/{name}/infer``);
    gRPC names are the method and the model (``ModelInfer [gan]``: ``grpc:ModelInfer``).
    A 429 row (`` (429)``) is the same route's. Several names may share a route; no name
    spans two."""
    base = name.removesuffix(RATE_LIMITED_SUFFIX).split(" [", 1)[0]
    if kind == "grpc" and _GRPC_METHOD.fullmatch(base):
        return f"grpc:{base}", "GRPC"
    match = _OIP_PATH.fullmatch(base)
    if match:
        return "/v2/models/{name}" + (match.group(1) or ""), kind
    if base.startswith("/v1/") and kind in ("GET", "POST", "DELETE"):
        return base, kind
    raise AssertionError(f"no gateway route for Locust's {kind} {name!r}: map it here")


def outcome_of(method: str, status: str) -> str:
    """The gateway's status as Locust sees it: served (2xx, 3xx, gRPC OK), 429 (gRPC
    RESOURCE_EXHAUSTED: the rate limiter, reported by Locust under ``<name> (429)``) or
    failed (anything else: a failure in Locust)."""
    if method == "GRPC":
        return {"OK": "served", "RESOURCE_EXHAUSTED": "429"}.get(status, "failed")
    code = int(status)
    return "served" if 200 <= code < 400 else "429" if code == 429 else "failed"


Counts = dict[tuple[str, str, str], int]  # (route, method, outcome) -> requests


def locust_counts(rows: list[LocustRow]) -> Counts:
    out: Counts = {}
    for row in rows:
        route, method = gateway_route(row.kind, row.name)
        if row.name.endswith(RATE_LIMITED_SUFFIX):
            parts = {"429": row.requests}
        else:
            parts = {"served": row.requests - row.failures, "failed": row.failures}
        for outcome, n in parts.items():
            if n:
                out[(route, method, outcome)] = out.get((route, method, outcome), 0) + n
    return out


def gateway_counts(counts: dict[tuple[str, str, str], int]) -> Counts:
    out: Counts = {}
    for (route, method, status), n in counts.items():
        key = (route, method, outcome_of(method, status))
        out[key] = out.get(key, 0) + n
    return out


def count_mismatches(locust: Counts, gateway: Counts) -> list[str]:
    """Every (route, method, outcome) whose counts differ: exact, no tolerance."""
    return [
        f"{route} {method} {outcome}: Locust {locust.get(k, 0)}, gateway {gateway.get(k, 0)}"
        for k in sorted(set(locust) | set(gateway))
        for route, method, outcome in [k]
        if locust.get(k, 0) != gateway.get(k, 0)
    ]


def locust_percentile(response_times: dict[int, int], requests: int, percent: float) -> int:
    """locust.stats.calculate_response_time_percentile (Locust 2.47), restated: importing
    locust would patch this process with gevent. Over response times Locust rounded (to
    1 ms below 100 ms, 10 ms below 1 s, 100 ms below 10 s), it returns the sample of rank
    int(requests * percent) + 1 in ascending order. compare() checks it against the CSV."""
    wanted = int(requests * percent)
    seen = 0
    for ms in sorted(response_times, reverse=True):
        seen += response_times[ms]
        if requests - seen <= wanted:
            return ms
    return 0


def locust_rounded(ms: float) -> float:
    """A time as Locust rounds it (locust.stats.bucket_response_time)."""
    if ms < 100:
        return round(ms)
    return round(ms, -1 if ms < 1000 else -2 if ms < 10000 else -3)


@dataclass(frozen=True)
class P95:
    route: str
    requests: int
    locust_ms: int  # Locust's p95 over every request of the route
    bucket: tuple[float, float]  # the histogram's p95 bucket (lower, upper], ms
    allowed: tuple[float, float]  # where the rule lets Locust's p95 lie, ms, both ends in
    added_ms: float  # Locust's times minus the histogram's, summed over the route
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_p95(
    route: str, buckets: dict[float, int], seconds: float, times: dict[int, int], total_ms: float
) -> P95:
    """Locust's p95 of a route against the gateway's histogram of the same requests.

    The histogram's p95 bucket is the first whose upper bound reaches 95% of the count
    (rank ceil(0.95 n)). Locust's p95 is its time of rank int(0.95 n) + 1: the same rank,
    or one higher when 0.95 n is a whole number (n = 20: Locust's p95 is the slowest
    request); the check uses the histogram's bucket of Locust's rank, b (the p95 bucket
    but for that).

    Per request, Locust's time = the gateway's + what the client adds - what the gateway
    counts after its answer has gone out. The client adds the connection, its encoding
    and decoding, and waits: Locust's users share one thread (gevent), so an answer that
    has arrived waits while another user decodes its own, the client shares 2 cores
    with the gateway, the model services and whatever else runs, and the gateway's clock
    starts only when its event loop gets to the request. That is >= 0, a few ms, and now
    and then tens of ms (80 ms on a 6 ms job submission in one run). The gateway counts
    time after its answer only over HTTP: the front door stops its clock when the app
    returns, after the last byte is written, so work after the write and the process
    waiting for a core in between count (a 4 ms metadata call at the client was over 5 ms
    at the gateway in one run); over gRPC it stops before the answer is serialized.
    That is >= 0 and assumed below HTTP_LAG_MS (a scheduling period: 12 ms is Linux's
    for 2 cores); 0 over gRPC.

    The rule: Locust's p95 lies from b's lower edge less that lag, up to the next
    bucket's upper edge, or to b's upper edge plus ``added`` (Locust's times minus the
    histogram's, summed over the route) if that is higher; both ends included. And
    ``added`` is at least minus the lag and at most CLIENT_MEAN_MS, per request.
    - The lower end: each request's Locust time is at least its gateway time less the
      lag, so is the k-th fastest, and the gateway's k-th is above b's lower edge.
    - The ends included: Locust rounds each time (1 ms below 100 ms, 10 ms below 1 s,
      100 ms below 10 s) and every edge (0.5, 1, 2.5 ... 10000 ms) is a rounded value,
      so a time just past an edge can read as the edge itself (the ends are rounded
      the same way).
    - The upper end: the part the client adds that grows with the request fits in the
      next bucket up (1.5 times the gateway's time more: the buckets are 2 to 2.5 times
      apart); a stall does not, and on a route with under 20 requests the p95 is the
      slowest one. No request gets more than ``added`` (no request gets less than 0, the
      HTTP lag aside), so the k-th fastest at the client is at most the gateway's k-th
      plus ``added``: however long the stall, no constant to tune. That end is only as
      good as the histogram's sum, hence the bound on ``added``: a gateway that times too
      little (the wrong span, the wrong unit) shows there. The runs measured added 1 to
      12 ms a request (loadtests/README.md).
    A histogram that puts a route's p95 a bucket or more off, or times a route's requests
    too long or much too short on average, fails."""
    bounds = sorted(buckets)
    edges = [0.0, *(le * 1000 for le in bounds)]  # ms; bucket i is (edges[i], edges[i + 1]]
    count = buckets[math.inf]
    requests = sum(times.values())
    p95 = next(i for i, le in enumerate(bounds) if 100 * buckets[le] >= 95 * count)
    rank = int(count * 0.95) + 1
    b = next(i for i, le in enumerate(bounds) if buckets[le] >= rank)
    lag = 0.0 if route.startswith("grpc:") else HTTP_LAG_MS
    added = total_ms - seconds * 1000
    low = locust_rounded(max(0.0, edges[b] - lag))
    high = max(edges[min(b + 2, len(edges) - 1)], locust_rounded(edges[b + 1] + max(added, 0)))
    locust_ms = locust_percentile(times, requests, 0.95)
    problems = []
    if requests != count:
        problems.append(f"{route}: {requests} Locust response times, {count} in the histogram")
    if not low <= locust_ms <= high:
        problems.append(
            f"p95 {route}: Locust {locust_ms} ms, outside {low:g}..{high:g} ms "
            f"(histogram's p95 bucket {edges[p95]:g}..{edges[p95 + 1]:g} ms)"
        )
    if not -lag * count <= added <= CLIENT_MEAN_MS * count:
        problems.append(
            f"{route}: Locust's times minus the histogram's sum = {added:.1f} ms over {count} "
            f"requests, not within {-lag:g}..{CLIENT_MEAN_MS:g} ms a request"
        )
    bucket = (edges[p95], edges[p95 + 1])
    return P95(route, count, locust_ms, bucket, (low, high), added, tuple(problems))


def by_route(rows: list[LocustRow]) -> dict[str, tuple[dict[int, int], float]]:
    """Locust's response times and their sum merged by gateway route (every method: the
    histogram is labelled by route only), 429 rows included (the histogram has them)."""
    out: dict[str, tuple[dict[int, int], float]] = {}
    for row in rows:
        route = gateway_route(row.kind, row.name)[0]
        merged, total = out.get(route, ({}, 0.0))
        for ms, n in row.response_times.items():
            merged[ms] = merged.get(ms, 0) + n
        out[route] = (merged, total + row.total_ms)
    return out


def compare(rows: list[LocustRow], moved: Scrape) -> tuple[list[str], list[P95], str]:
    """What does not match (counts, histogram counts, p95s), each route's p95 check, and a
    table of the whole."""
    problems = []
    for row in rows:  # the restated percentile is Locust's own
        done = sum(row.response_times.values())
        if done != row.requests or locust_percentile(row.response_times, done, 0.95) != row.p95_ms:
            problems.append(f"{row.kind} {row.name}: response_times.json disagrees with the CSV")
    locust, gateway = locust_counts(rows), gateway_counts(moved.counts)
    problems += count_mismatches(locust, gateway)
    per_route: dict[str, int] = {}
    for (route, _method, _status), n in moved.counts.items():
        per_route[route] = per_route.get(route, 0) + n
    for route in sorted(set(per_route) | set(moved.buckets)):
        observed = moved.buckets.get(route, {}).get(math.inf, 0)
        if observed != per_route.get(route, 0):
            problems.append(
                f"{route}: histogram count {observed}, request counter {per_route.get(route, 0)}"
            )
    merged = by_route(rows)
    checks = [
        check_p95(route, moved.buckets[route], moved.sums[route], *merged.get(route, ({}, 0.0)))
        for route in sorted(moved.buckets)
    ]
    problems += [problem for c in checks for problem in c.problems]
    return problems, checks, table(locust, gateway, moved.counts, checks)


def table(
    locust: Counts, gateway: Counts, statuses: dict[tuple[str, str, str], int], checks: list[P95]
) -> str:
    """Per route and method: Locust's served/429/failed, the gateway's and its statuses;
    per route: Locust's p95, the histogram's p95 bucket, the rule's range, the time the
    client added to a request on average."""
    p95s = {c.route: c for c in checks}
    lines = [
        f"{'route':<26}{'method':<7}{'Locust':>9}{'gateway':>9}  {'statuses':<9}"
        f"{'Locust p95':>11}{'histogram p95':>15}{'allowed':>11}{'client +':>10}  p95",
    ]
    for route, method in sorted({(r, m) for r, m, _o in (*locust, *gateway)}):
        ours = "/".join(str(locust.get((route, method, o), 0)) for o in OUTCOMES)
        theirs = "/".join(str(gateway.get((route, method, o), 0)) for o in OUTCOMES)
        codes = " ".join(
            f"{s}:{n}" for (r, m, s), n in sorted(statuses.items()) if (r, m) == (route, method)
        )
        c = p95s.pop(route, None)  # once per route
        p95 = bucket = allowed = client = verdict = ""
        if c is not None:
            p95 = f"{c.locust_ms} ms"
            bucket = f"({c.bucket[0]:g}, {c.bucket[1]:g}] ms"
            allowed = f"{c.allowed[0]:g}..{c.allowed[1]:g}"
            client = f"{c.added_ms / c.requests:.1f} ms"
            verdict = f"{'ok' if c.ok else 'FAIL'} (n={c.requests})"
        lines.append(
            f"{route:<26}{method:<7}{ours:>9}{theirs:>9}  {codes:<9}{p95:>11}{bucket:>15}"
            f"{allowed:>11}{client:>10}  {verdict}"
        )
    lines.append("Locust, gateway: served/429/failed; client +: Locust's mean minus the gateway's")
    return "\n".join(lines)


def scaled_slos(factor: float, folder: Path) -> Path:
    """loadtests/slo.yaml with every p95 limit multiplied by ``factor``, as a new file."""
    slos = yaml.safe_load(SLO_FILE.read_text())
    for section in (slos["default"], *(slos.get("profiles") or {}).values()):
        if section and section.get("p95_ms"):
            section["p95_ms"] = {name: round(ms * factor) for name, ms in section["p95_ms"].items()}
    path = folder / "slo.yaml"
    path.write_text(yaml.safe_dump(slos))
    return path


def test_smoke_profile_meets_its_slos_with_every_family(
    gateway: Server, api_keys: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    out = tmp_path / "smoke"
    factor, calls = pace.slowness(model_servers(request))
    host = f"models {factor:.2f}x slower than the reference pace (model calls, ms: {calls})"
    print(host)
    before = quiet_scrape(gateway.url, api_keys["ops"])
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
        "--slo",
        str(scaled_slos(factor, tmp_path)),
        "--quiet",
        key=api_keys["full"],
    )
    elapsed = time.monotonic() - started
    after = quiet_scrape(gateway.url, api_keys["ops"])
    output = host + "\n" + run.stdout[-8000:] + run.stderr[-4000:]
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

    # The gateway's metrics against Locust: nothing else hit the gateway meanwhile (the
    # runner does not poll it with --url; /metrics is not counted; quiet_scrape checks),
    # and every request Locust sent is in its statistics (a user stopped at the end
    # finishes its request in flight first: locustfile.to_the_end; the CSV is written
    # from the final statistics: locustfile.write_final_csv), so the gateway's counters
    # moved by exactly Locust's requests.
    problems, _checks, report = compare(locust_rows(out), delta(before, after))
    (out / "metrics_vs_locust.txt").write_text(report + "\n")
    print(report)
    assert not problems, "\n".join(
        ["the gateway's metrics disagree with Locust:", *problems, report]
    )


def test_a_target_off_this_machine_is_refused_before_any_load() -> None:
    run = loadtest("--profile", "smoke", "--url", "http://192.0.2.1:3000", timeout=60)
    assert run.returncode == 2
    assert "not a loopback address" in run.stderr


def test_scaled_slos_multiply_every_p95_and_nothing_else(tmp_path: Path) -> None:
    for profile in ("smoke", "ramp"):
        written, scaled = load_slo(profile), load_slo(profile, scaled_slos(2.5, tmp_path))
        assert scaled["p95_ms"] == {k: round(v * 2.5) for k, v in written["p95_ms"].items()}
        assert {k: v for k, v in scaled.items() if k != "p95_ms"} == {
            k: v for k, v in written.items() if k != "p95_ms"
        }


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


def test_the_metrics_check_fails_when_a_count_or_the_latency_is_wrong() -> None:
    """compare() on made-up numbers: 20 requests of 38 ms and one of 85 ms at the gateway,
    40 and 90 ms at the client, agree; a count off by one, a histogram that times too
    much, or one that misses most of a slow route's time, do not."""
    bounds = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, math.inf)

    def histogram(*times_s: float) -> dict[float, int]:
        return {le: sum(t <= le for t in times_s) for le in bounds}

    def run(client_ms: dict[int, int], gateway_s: list[float], count: int) -> list[str]:
        total = sum(ms * n for ms, n in client_ms.items())
        requests = sum(client_ms.values())
        p95 = locust_percentile(client_ms, requests, 0.95)
        rows = [LocustRow("POST", "/v1/samples [8 json]", requests, 0, p95, total, client_ms)]
        route = "/v1/samples"
        moved = Scrape(
            {(route, "POST", "200"): count},
            {route: histogram(*gateway_s)},
            {route: sum(gateway_s)},
        )
        return compare(rows, moved)[0]

    assert run({40: 19, 90: 1}, [0.038] * 19 + [0.085], 20) == []
    assert run({40: 19, 90: 1}, [0.038] * 19 + [0.085], 21) == [
        "/v1/samples POST served: Locust 20, gateway 21",
        "/v1/samples: histogram count 20, request counter 21",
    ]
    too_long = run({40: 19, 90: 1}, [0.3] * 20, 20)  # more than the client saw
    assert [p.split(":")[0] for p in too_long] == ["p95 /v1/samples", "/v1/samples"]
    too_short = run({400: 19, 900: 1}, [0.0004] * 20, 20)  # the upstream call not timed
    assert too_short == [
        "/v1/samples: Locust's times minus the histogram's sum = 8492.0 ms over 20 requests, "
        "not within -10..50 ms a request"
    ]
