"""What a queue adds at a given load, whatever the code: the 95th percentile of the time a
request spends in a queue with ``c`` servers (waiting and being served) over its service
time, for Poisson arrivals, by simulation.

    python -m loadtests.queueing                      # 1, 2, 4 servers at 50, 60, 70% load
    python -m loadtests.queueing --servers 1 --load 0.7 --costs exponential

A load test's "p95 within k x unloaded at this load" is bounded by it: the unloaded p95 of
a fixed-cost request is its service time, and a service at utilisation rho (``cpu.json``
of a load run) on one CPU is one server. BENCHMARKS.md ("Why the last goal of issue 12 is
out of reach") has the table.
"""

from __future__ import annotations

import argparse
import heapq

import numpy as np

COSTS = ("fixed", "exponential")


def sojourn_times(
    load: float, servers: int = 1, costs: str = "fixed", n: int = 200_000, seed: int = 0
) -> np.ndarray:
    """Each request's time from arrival to answer, in units of the mean service time, for
    ``n`` Poisson arrivals at ``load`` (utilisation of each of ``servers``), first come
    first served; the first tenth (the queue filling) left out."""
    if not 0 < load < 1:
        raise ValueError(f"load must be in (0, 1): {load}")
    if costs not in COSTS:
        raise ValueError(f"costs must be one of {COSTS}: {costs!r}")
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / (load * servers), n))
    service = np.ones(n) if costs == "fixed" else rng.exponential(1.0, n)
    free = [0.0] * servers  # when each server is next free (a heap)
    out = np.empty(n)
    for i in range(n):
        start = max(arrivals[i], heapq.heappop(free))
        end = start + service[i]
        heapq.heappush(free, end)
        out[i] = end - arrivals[i]
    return out[n // 10 :]


def p95_over_service(
    load: float, servers: int = 1, costs: str = "fixed", n: int = 200_000
) -> float:
    return float(np.percentile(sojourn_times(load, servers, costs, n), 95))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.queueing", description=__doc__)
    p.add_argument("--load", type=float, nargs="+", default=[0.5, 0.6, 0.7])
    p.add_argument("--servers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--costs", choices=COSTS, nargs="+", default=["fixed", "exponential"])
    p.add_argument("--requests", type=int, default=200_000)
    args = p.parse_args(argv)
    loads = " ".join(f"{x:>7.0%}" for x in args.load)
    print(f"p95 time in the system / service time   load {loads}")
    for costs in args.costs:
        for c in args.servers:
            row = " ".join(
                f"{p95_over_service(x, c, costs, args.requests):>6.2f}x" for x in args.load
            )
            print(f"{c} server{'s' if c > 1 else ' '}, {costs:<11} costs              {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
