"""loadtests.queueing (what a queue adds at a load) and loadtests.processes (the CPU each
part of a started stack used)."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

from loadtests import processes, queueing


def test_one_server_with_fixed_costs_waits_as_pollaczek_khinchine_says() -> None:
    # M/D/1: mean time in the system = service + rho / (2 (1 - rho)) services
    for load in (0.5, 0.7):
        mean = queueing.sojourn_times(load, 1, "fixed", n=100_000).mean()
        assert mean == pytest.approx(1 + load / (2 * (1 - load)), rel=0.05)


def test_one_server_with_exponential_costs_has_the_known_p95() -> None:
    # M/M/1: time in the system is exponential with rate (1 - rho): p95 = ln 20 / (1 - rho)
    got = queueing.p95_over_service(0.5, 1, "exponential", n=100_000)
    assert got == pytest.approx(math.log(20) / 0.5, rel=0.05)


def test_more_servers_at_the_same_load_wait_less() -> None:
    p95 = [queueing.p95_over_service(0.7, c, "fixed", n=50_000) for c in (1, 2, 4)]
    assert p95[0] > p95[1] > p95[2] > 1.0
    assert p95[0] > 3 > p95[2]  # the bound BENCHMARKS.md reads off this table


@pytest.mark.parametrize("args", [(0.0, 1, "fixed"), (1.0, 1, "fixed"), (0.5, 1, "pareto")])
def test_a_load_or_cost_law_it_cannot_simulate_is_refused(args) -> None:
    with pytest.raises(ValueError):
        queueing.sojourn_times(*args, n=10)


def test_cpu_use_is_counted_per_service_and_for_children_that_ended() -> None:
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    wait = "import sys\nsys.stdin.read()\n"
    before, started = processes.cpu_seconds(), time.monotonic()
    busy = subprocess.Popen(
        [sys.executable, "-c", spin + wait, "services.busy:Busy"], stdin=subprocess.PIPE
    )
    idle = subprocess.Popen(
        [sys.executable, "-c", wait, "services.idle:Idle"], stdin=subprocess.PIPE
    )
    ended = subprocess.run([sys.executable, "-c", spin], check=True)
    assert ended.returncode == 0
    time.sleep(0.6)  # the busy child has spun by now
    try:
        use = processes.cpu_use(before, processes.cpu_seconds(), time.monotonic() - started)
        spent = {k: v * (time.monotonic() - started) for k, v in use.items()}
    finally:
        for p in (busy, idle):
            p.communicate(b"")
    assert spent["busy"] >= 0.35 and spent["idle"] < spent["busy"] - 0.3
    assert spent["locust"] >= 0.35  # a child that ended and was waited for
    assert np.all(np.array(list(use.values())) >= 0)
