"""A core budget per service: which CPUs each model service of one machine runs on.

Left alone, every ONNX Runtime session uses every core, so three services on two cores
run six or more compute threads that fight over them, and a one-sentence request
waits behind an image. ``genserve serve`` therefore gives each model service a share of
the CPUs this process may use, in proportion to its kind's ``cpu_weight``, as a CPU
affinity its process and every thread it starts inherit; ONNX Runtime then sizes its
thread pool to that share (genserve.runtime: ``intra_op_threads = 0`` means "the CPUs
this process may use"). The gateway is not pinned: it moves bytes, and takes whichever
core is free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path


def available() -> list[int]:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    return sorted(os.sched_getaffinity(0))


def budget(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """How many CPUs' worth of time this process may use: its affinity, capped by a
    cgroup CPU quota (a container's ``cpus:`` in compose, ``limits.cpu`` in Kubernetes),
    rounded up. What ONNX Runtime sizes its thread pool to."""
    count = len(available())
    quota = _quota(cgroup)
    return max(1, min(count, math.ceil(quota))) if quota else count


def _quota(cgroup: Path) -> float | None:
    """CPUs of quota from cgroup v2 (cpu.max) or v1 (cfs_quota_us / cfs_period_us)."""
    try:
        v2 = cgroup / "cpu.max"
        if v2.is_file():
            quota, period = [*v2.read_text().split(), "100000"][:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = cgroup / "cpu"
        quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
        period_us = int((v1 / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def parse(text: str) -> list[int]:
    """A CPU list as Linux writes it ("0-3,6") -> [0, 1, 2, 3, 6]."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"not a CPU list: {text!r}")
        lo, hi = int(first), int(last or first)
        if hi < lo:
            raise ValueError(f"not a CPU list: {text!r}")
        cpus.update(range(lo, hi + 1))
    if not cpus:
        raise ValueError(f"not a CPU list: {text!r}")
    return sorted(cpus)


def format_list(cpus: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    out: list[str] = []
    for cpu in sorted(cpus):
        if out and cpu == int(out[-1].rsplit("-", 1)[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{cpu}"
        else:
            out.append(str(cpu))
    return ",".join(out)


def partition(weights: Mapping[str, float], cpus: Sequence[int]) -> dict[str, list[int]]:
    """Contiguous shares of ``cpus``, one per service in order, in proportion to its
    weight and at least one CPU each. With more services than CPUs, services share CPUs
    in turn (the lightest share with the others); every CPU is given to someone."""
    if not weights or not cpus:
        return {}
    names = list(weights)
    total = sum(weights.values())
    shares = {n: max(1, int(len(cpus) * weights[n] / total)) for n in names}
    spare = len(cpus) - sum(shares.values())
    for name in sorted(names, key=lambda n: -weights[n]):  # leftovers to the heaviest
        if spare <= 0:
            break
        shares[name] += 1
        spare -= 1
    out, start = {}, 0
    for name in names:
        out[name] = [cpus[(start + i) % len(cpus)] for i in range(min(shares[name], len(cpus)))]
        start = (start + shares[name]) % len(cpus)
    return out
