"""The soak's verdict (loadtests/soak.py): memory growth over the second half, the error
ratio with deliberate 429s apart, and processes that died."""

from __future__ import annotations

from pathlib import Path

from loadtests.soak import judge

HEADER = "Type,Name,Request Count,Failure Count\n"


def _stats(folder: Path, total: int, failed: int, limited: int = 0) -> Path:
    stats = folder / "locust_stats.csv"
    stats.write_text(HEADER + f"POST,/v1/samples,{total},{failed}\n,Aggregated,{total},{failed}\n")
    (folder / "locust_failures.csv").write_text(
        "Method,Name,Error,Occurrences\n"
        f"POST,/v1/samples,HTTP 429: rate limited,{limited}\n"
        f"POST,/v1/samples,HTTP 500: boom,{failed - limited}\n"
    )
    return stats


def _rows(growth_mb: float, seconds: float = 600, pid: int = 7) -> list:
    steps = 10
    return [
        (seconds * i / steps, "translation worker", pid, 200 + growth_mb * max(0, i - 5) / 5)
        for i in range(steps + 1)
    ]


def test_a_steady_stack_meets_the_verdict(tmp_path: Path) -> None:
    verdict = judge(_rows(10), 600, _stats(tmp_path, 10_000, 5, limited=5), 50, 0.001)
    assert verdict["met"], verdict
    assert verdict["errors"] == 0 and verdict["rate_limited_429"] == 5
    assert verdict["rss_growth_second_half_mb"] == {"translation worker (7)": 10.0}


def test_growth_errors_and_deaths_each_fail_it(tmp_path: Path) -> None:
    stats = _stats(tmp_path, 10_000, 0)
    assert not judge(_rows(60), 600, stats, 50, 0.001)["met"]  # grew 60 MB
    failing = _stats(tmp_path, 10_000, 20)  # 0.2% errors
    assert not judge(_rows(0), 600, failing, 50, 0.001)["met"]
    dead = [r for r in _rows(0) if r[0] < 300]  # no sample after the fifth minute
    verdict = judge(dead + _rows(0, pid=8), 600, _stats(tmp_path, 100, 0), 50, 0.001)
    assert not verdict["met"] and verdict["died"] == ["translation worker (7)"]
