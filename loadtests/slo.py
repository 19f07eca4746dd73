"""SLOs against a run's statistics: p95 per route name and an error ratio in which the rate
limiter's deliberate 429s are counted apart. Pure functions (no locust), so the rule is
testable on its own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loadtests.config import FLOW, RATE_LIMITED_SUFFIX

NOT_CHECKED = "no requests in this run (not checked)"


@dataclass(frozen=True)
class RouteStats:
    """One row of a run's statistics: a request name and what came of its requests."""

    method: str  # POST, GET, grpc, or FLOW (a timed sequence of requests, not a request)
    name: str  # the route template (and variant), e.g. "/v1/jobs/{job_id}"
    requests: int
    failures: int
    p95_ms: float | None  # None when no request finished


@dataclass
class Verdict:
    """The outcome of one SLO evaluation."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (slo, ok, detail)
    requests: int = 0  # requests that count (every outcome but a 429)
    errors: int = 0  # of those, the ones that failed
    rate_limited: int = 0  # 429s (and gRPC RESOURCE_EXHAUSTED), counted apart

    @property
    def ok(self) -> bool:
        return all(ok for _slo, ok, _detail in self.checks)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def breaches(self) -> list[str]:
        return [f"{slo}: {detail}" for slo, ok, detail in self.checks if not ok]

    def report(self, title: str) -> str:
        lines = [
            f"SLO {title}: {'met' if self.ok else 'BREACHED'} "
            f"({self.requests} requests, {self.errors} errors = {self.error_ratio:.2%}; "
            f"{self.rate_limited} rate-limited 429s counted apart)"
        ]
        unchecked = 0
        for slo, ok, detail in self.checks:
            if detail == NOT_CHECKED:
                unchecked += 1
                continue
            lines.append(f"  {'ok  ' if ok else 'FAIL'} {slo}: {detail}")
        if unchecked:
            lines.append(f"  --   {unchecked} p95 SLOs not checked: their routes had no requests")
        return "\n".join(lines)


def is_rate_limited(name: str) -> bool:
    return name.endswith(RATE_LIMITED_SUFFIX)


def evaluate(slo: dict[str, Any], rows: Iterable[RouteStats]) -> Verdict:
    """Check ``slo`` (``error_ratio``, ``rate_limited_ratio``, ``min_requests``, ``p95_ms``:
    name -> ms) against ``rows``."""
    verdict = Verdict()
    by_name: dict[str, RouteStats] = {}
    for row in rows:
        if is_rate_limited(row.name):
            verdict.rate_limited += row.requests
            continue
        by_name[row.name] = row
        if row.method == FLOW:
            continue  # its requests are counted one by one; only its p95 is checked
        verdict.requests += row.requests
        verdict.errors += row.failures

    min_requests = slo.get("min_requests")
    if min_requests is not None:
        ok = verdict.requests >= min_requests
        verdict.checks.append(
            (
                "min_requests",
                ok,
                f"{verdict.requests} requests"
                + ("" if ok else f" < {min_requests} (short by {min_requests - verdict.requests})"),
            )
        )

    limit = slo.get("error_ratio")
    if limit is not None:
        ratio = verdict.error_ratio
        ok = ratio <= limit
        detail = f"{ratio:.2%} ({verdict.errors} of {verdict.requests}) <= {limit:.2%}"
        if not ok:
            detail = (
                f"{ratio:.2%} ({verdict.errors} of {verdict.requests}) > {limit:.2%}, "
                f"over by {(ratio - limit) * 100:.2f} points"
            )
        verdict.checks.append(("error_ratio", ok, detail))

    limit = slo.get("rate_limited_ratio")
    if limit is not None:
        total = verdict.requests + verdict.rate_limited
        ratio = verdict.rate_limited / total if total else 0.0
        ok = ratio <= limit
        detail = (
            f"{ratio:.2%} ({verdict.rate_limited} of {total}) {'<=' if ok else '>'} {limit:.2%}"
        )
        if not ok:
            detail += f", over by {(ratio - limit) * 100:.2f} points"
        verdict.checks.append(("rate_limited_ratio", ok, detail))

    for name, limit_ms in (slo.get("p95_ms") or {}).items():
        route = by_name.get(name)
        if route is None or route.p95_ms is None or route.requests == 0:
            # Not a breach: a stress run loads one family, and a short run may not reach
            # every rare task. The smoke test checks separately that each family was served.
            verdict.checks.append((f"p95 {name}", True, NOT_CHECKED))
            continue
        ok = route.p95_ms <= limit_ms
        detail = f"{route.p95_ms:.0f} ms {'<=' if ok else '>'} {limit_ms:.0f} ms"
        if not ok:
            over = route.p95_ms - limit_ms
            detail += f", over by {over:.0f} ms (+{over / limit_ms:.0%})"
        verdict.checks.append((f"p95 {name}", ok, detail + f" ({route.requests} requests)"))
    return verdict
