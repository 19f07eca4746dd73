"""A soak: the product mix at a steady rate for a long time, every process's memory
sampled, then judged (``make soak``; not in CI).

    python -m loadtests.soak --users 31 --wait pace:2 --minutes 30

Starts the stack (as ``make loadtest`` does, each service on its core budget), runs Locust's
mix profile for ``--minutes`` with ``--users`` users paced by ``--wait`` (the defaults,
31 users at 2 tasks/s each, offer about 63 requests/s: 70% of the capacity a ramp found
on the 2-core development machine on 2026-12-02, 47% of the 133 requests/s found since,
BENCHMARKS.md; ``--users 44`` is 70% of that), and samples the RSS of every process
it started (each service's server and worker, the gateway, Locust) every ``--every``
seconds. Verdict: over the second half, every process's RSS grows by less than
``--max-growth-mb``, under ``--max-error-ratio`` of the requests fail (deliberate 429s
apart, as the SLO file counts them), and no process died (the stack is not supervised
here, so a death is a failure, not a restart). Writes ``rss.csv``, ``rss.png`` and
``soak.json`` beside Locust's reports in build/loadtests/soak/; exit code 0 when the
verdict is met.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from loadtests import config
from loadtests.processes import label
from loadtests.run import GRACE_S, run_locust, stack

OUT = config.REPORTS_DIR / "soak"


class Sampler(threading.Thread):
    """RSS (MiB) of every process this one has started, every ``every`` seconds."""

    def __init__(self, every: float) -> None:
        super().__init__(name="rss", daemon=True)
        self.every, self.rows = every, []  # (seconds since start, label, pid, rss MiB)
        self.seen: dict[int, str] = {}
        self.stopping = threading.Event()
        self.started_at = time.monotonic()

    def sample(self) -> None:
        now = time.monotonic() - self.started_at
        for p in psutil.Process().children(recursive=True):
            try:
                rss = p.memory_info().rss / 2**20
            except psutil.Error:
                continue
            name = self.seen.setdefault(p.pid, label(p))
            self.rows.append((round(now, 1), name, p.pid, round(rss, 1)))

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self.sample()


def judge(
    rows: list[tuple[float, str, int, float]],
    seconds: float,
    stats: Path,
    max_growth_mb: float,
    max_error_ratio: float,
) -> dict[str, Any]:
    """Second-half RSS growth per process, the error ratio, and the processes that died."""
    half = seconds / 2
    by_process: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for t, name, pid, rss in rows:
        by_process.setdefault((name, pid), []).append((t, rss))
    growth: dict[str, float] = {}
    died = []
    for (name, pid), series in sorted(by_process.items()):
        if name == "locust":
            continue
        second = [rss for t, rss in series if t >= half]
        if series[-1][0] < seconds - 60:
            died.append(f"{name} ({pid})")
        if len(second) >= 2:
            growth[f"{name} ({pid})"] = round(second[-1] - second[0], 1)
    total = failed = limited = 0
    with stats.open() as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                total, failed = int(row["Request Count"]), int(row["Failure Count"])
    failures = stats.with_name("locust_failures.csv")
    if failures.exists():
        with failures.open() as f:
            limited = sum(int(r["Occurrences"]) for r in csv.DictReader(f) if "429" in r["Error"])
    errors = (failed - limited) / max(1, total - limited)
    verdict = {
        "requests": total,
        "errors": failed - limited,
        "rate_limited_429": limited,
        "error_ratio": round(errors, 5),
        "rss_growth_second_half_mb": growth,
        "died": died,
        "limits": {"max_growth_mb": max_growth_mb, "max_error_ratio": max_error_ratio},
    }
    verdict["met"] = (
        bool(growth)
        and all(g < max_growth_mb for g in growth.values())
        and errors < max_error_ratio
        and not died
        and total > 0
    )
    return verdict


def plot(rows: list[tuple[float, str, int, float]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    series: dict[str, list[tuple[float, float]]] = {}
    for t, name, pid, rss in rows:
        series.setdefault(f"{name} ({pid})", []).append((t / 60, rss))
    for name, points in sorted(series.items()):
        if points and max(r for _, r in points) > 20:  # leave out tiny helper processes
            ax.plot([t for t, _ in points], [r for _, r in points], label=name)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.soak", description=__doc__)
    p.add_argument("--users", type=int, default=31, help="Locust users (mix weights)")
    p.add_argument("--wait", default="pace:2", help="think time (loadtests --wait)")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--every", type=float, default=10.0, help="seconds between RSS samples")
    p.add_argument("--max-growth-mb", type=float, default=50.0)
    p.add_argument("--max-error-ratio", type=float, default=0.001)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    seconds = args.minutes * 60
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sampler = Sampler(args.every)
    with stack(out / "stack") as (url, grpc):
        cmd = [
            sys.executable, "-m", "locust", "-f", str(config.HERE / "locustfile.py"),
            "--headless", "--only-summary", "--host", url, "--grpc-host", grpc,
            "--load-profile", "mix", "--peak-users", str(args.users), "--wait", args.wait,
            "--seconds", str(seconds), "--mix-file", str(config.MIX_FILE),
            "--slo-file", str(config.SLO_FILE), "--report-dir", str(out),
            "--html", str(out / "report.html"), "--csv", str(out / "locust"),
        ]  # fmt: skip
        sampler.sample()
        sampler.start()
        locust_code = run_locust(cmd, seconds + GRACE_S)
        sampler.stopping.set()
        sampler.join()
    with (out / "rss.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "process", "pid", "rss_mib"])
        writer.writerows(sampler.rows)
    verdict = judge(
        sampler.rows, seconds, out / "locust_stats.csv", args.max_growth_mb, args.max_error_ratio
    )
    verdict.update(users=args.users, minutes=args.minutes, locust_exit_code=locust_code)
    (out / "soak.json").write_text(json.dumps(verdict, indent=2))
    plot(sampler.rows, out / "rss.png", f"soak: mix, {args.users} users, {args.minutes:g} min")
    print(json.dumps(verdict, indent=2))
    print(f"loadtests: soak reports in {out} (rss.csv, rss.png, soak.json, report.html)")
    return 0 if verdict["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
