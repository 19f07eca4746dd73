"""The core budget: CPU lists and the partition genserve serve gives its services."""

from __future__ import annotations

import pytest

from genserve import cpus


def test_cpu_lists_round_trip() -> None:
    assert cpus.parse("0-3,6") == [0, 1, 2, 3, 6]
    assert cpus.format_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    for bad in ("", "a", "3-1", "1-", "-1"):
        with pytest.raises(ValueError):
            cpus.parse(bad)


def test_partition_shares_by_weight_and_covers_every_cpu() -> None:
    weights = {"gan": 1.0, "translation": 2.0, "imagegen": 2.0}
    # Two cores, three services: each gets one; the light one shares.
    two = cpus.partition(weights, [0, 1])
    assert two == {"gan": [0], "translation": [1], "imagegen": [0]}
    sixteen = cpus.partition(weights, list(range(16)))
    assert [len(v) for v in sixteen.values()] == [3, 7, 6]
    assert sorted(c for v in sixteen.values() for c in v) == list(range(16))  # disjoint
    assert sixteen["translation"] == list(range(3, 10))  # contiguous
    assert cpus.partition(weights, [4]) == {"gan": [4], "translation": [4], "imagegen": [4]}


def test_budget_follows_affinity_and_a_container_quota(tmp_path) -> None:
    assert cpus.budget(tmp_path) == len(cpus.available())  # no cgroup files: affinity
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpus.budget(tmp_path) == len(cpus.available())
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: one thread
    assert cpus.budget(tmp_path) == 1
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpus.budget(v1) == len(cpus.available())
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    assert cpus.budget(v1) == 1
    (tmp_path / "cpu.max").write_text("150000 50000\n")  # 3 CPUs of quota, capped
    assert cpus.budget(tmp_path) == min(3, len(cpus.available()))
