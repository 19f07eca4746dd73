"""The benchmarks' side-by-side timing: systems measured in turns, not one after another."""

from __future__ import annotations

import time

from genserve.timing import side_by_side


def test_systems_take_turns_in_a_rotating_order() -> None:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    rates = side_by_side(fns, items=1, seconds=0.0, rounds=4)  # one call a turn
    assert calls == list("abc" + "abc" + "bca" + "cab" + "abc")  # warm-up, then 4 rounds
    assert set(rates) == set("abc") and all(r > 0 for r in rates.values())


def test_rates_are_items_per_second_of_each_system() -> None:
    fns = {"fast": lambda: time.sleep(0.004), "slow": lambda: time.sleep(0.012)}
    rates = side_by_side(fns, items=8, seconds=0.3, rounds=3)
    assert 8 / 0.012 * 0.5 < rates["slow"] <= 8 / 0.012
    assert 1.5 < rates["fast"] / rates["slow"] < 3.5  # 3x, with room for a busy machine
