"""Timing helpers for the benchmark commands."""

from __future__ import annotations

import time
from collections.abc import Callable


def throughput(fn: Callable[[], object], items: int, seconds: float, min_runs: int = 2) -> float:
    """Items per second of ``fn`` (which handles ``items`` per call), after one warm-up
    call, over at least ``seconds`` and ``min_runs`` calls."""
    fn()
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or runs < min_runs:
        fn()
        runs += 1
    return runs * items / elapsed
