"""Each route's p95 under load against its p95 unloaded, from two runs' Locust statistics.

    python -m loadtests.compare build/loadtests/unloaded build/loadtests/loaded [--max 3]

Reads ``locust_stats.csv`` of each folder and prints, for every request name in both
(429 rows and the aggregate left out), the p95 unloaded, the p95 loaded and their ratio;
exit code 1 when a ratio is over ``--max`` or a loaded run had errors.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def read(folder: Path) -> dict[str, tuple[int, int, float]]:
    """Request name -> (requests, failures, p95 ms)."""
    rows = {}
    with (folder / "locust_stats.csv").open() as f:
        for row in csv.DictReader(f):
            name = row["Name"]
            if name == "Aggregated" or "(429)" in name or not int(row["Request Count"]):
                continue
            rows[name] = (int(row["Request Count"]), int(row["Failure Count"]), float(row["95%"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.compare", description=__doc__)
    p.add_argument("unloaded", type=Path)
    p.add_argument("loaded", type=Path)
    p.add_argument("--max", type=float, default=3.0, help="the largest ratio allowed")
    args = p.parse_args(argv)
    base, load = read(args.unloaded), read(args.loaded)
    worst, failed = 0.0, 0
    print(f"{'request':<40} {'unloaded p95':>12} {'loaded p95':>10} {'ratio':>6} {'n':>6}")
    for name in sorted(set(base) & set(load)):
        ratio = load[name][2] / max(1.0, base[name][2])
        worst = max(worst, ratio)
        failed += load[name][1]
        print(
            f"{name:<40} {base[name][2]:>10.0f}ms {load[name][2]:>8.0f}ms"
            f" {ratio:>5.2f}x {load[name][0]:>6}"
        )
    print(f"worst ratio {worst:.2f}x (limit {args.max:g}x); errors under load: {failed}")
    return 0 if worst <= args.max and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
