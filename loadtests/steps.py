"""Per-step statistics for the stepped profiles (ramp, stress, spike): every request sent
during a step, with its exact latency, so each step has its own offered rate, percentiles
and error ratio (Locust's own statistics are cumulative over the run)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.config import FLOW
from loadtests.slo import RouteStats, is_rate_limited


def percentile(sorted_ms: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_ms:
        return None
    rank = max(1, math.ceil(q * len(sorted_ms)))
    return sorted_ms[rank - 1]


@dataclass
class Step:
    label: str
    users: int
    started: float
    ended: float | None = None
    times: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (method, name)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    rate_limited: int = 0

    def seconds(self, now: float) -> float:
        return max(1e-9, (self.ended if self.ended is not None else now) - self.started)

    def rows(self) -> list[RouteStats]:
        out = []
        for key, times in self.times.items():
            ordered = sorted(times)
            out.append(
                RouteStats(
                    key[0], key[1], len(times), self.failures.get(key, 0), percentile(ordered, 0.95)
                )
            )
        return out

    def summary(self, now: float) -> dict[str, Any]:
        """The step's row of the report: offered rate (the requests sent during the step and
        answered, 429s and failures included, per second of the step), latency percentiles
        over every request but the 429s, and the error ratio (failures / requests, 429s
        apart). FLOW entries (a job end to end) are not requests: left out of all three."""
        seconds = self.seconds(now)
        every = sorted(
            t for (method, _name), ts in self.times.items() if method != FLOW for t in ts
        )
        requests = len(every)
        errors = sum(n for (method, _name), n in self.failures.items() if method != FLOW)
        return {
            "step": self.label,
            "users": self.users,
            "seconds": round(seconds, 2),
            "offered_rps": round((requests + self.rate_limited) / seconds, 3),
            "ok_rps": round((requests - errors) / seconds, 3),
            "requests": requests,
            "errors": errors,
            "rate_limited": self.rate_limited,
            "error_ratio": round(errors / requests, 5) if requests else 0.0,
            "p50_ms": percentile(every, 0.50),
            "p95_ms": percentile(every, 0.95),
            "p99_ms": percentile(every, 0.99),
        }


class StepRecorder:
    """Collects each finished request into the current step."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    @property
    def current(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    def begin(self, label: str, users: int, now: float) -> None:
        self.finish(now)
        self.steps.append(Step(label, users, now))

    def finish(self, now: float) -> None:
        step = self.current
        if step is not None and step.ended is None:
            step.ended = now

    def step_at(self, when: float) -> Step | None:
        """The step during which ``when`` (a perf_counter time) fell."""
        for step in reversed(self.steps):
            if step.started <= when:
                return step if step.ended is None or when < step.ended else None
        return None

    def record(
        self, method: str, name: str, response_time_ms: float, failed: bool, finished: float
    ) -> None:
        """A finished request, counted in the step in which it was *sent*: a request queued
        during a spike and answered after it belongs to the spike."""
        step = self.step_at(finished - response_time_ms / 1000)
        if step is None:
            return
        if is_rate_limited(name):
            step.rate_limited += 1
            return
        key = (method, name)
        step.times.setdefault(key, []).append(float(response_time_ms))
        if failed:
            step.failures[key] = step.failures.get(key, 0) + 1

    def summaries(self, now: float) -> list[dict[str, Any]]:
        return [step.summary(now) for step in self.steps]

    @staticmethod
    def write(folder: Path, rows: list[dict[str, Any]]) -> None:
        """The steps' rows (summaries, with what the caller added) as steps.csv and
        steps.json in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "steps.json").write_text(json.dumps(rows, indent=2) + "\n")
        with (folder / "steps.csv").open("w", newline="") as f:
            if rows:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
