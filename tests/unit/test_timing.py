"""The benchmarks' side-by-side timing: systems measured in turns, not one after another."""

from __future__ import annotations

import time

from genserve.timing import Turns, side_by_side


def test_systems_take_turns_in_a_rotating_order() -> None:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    measured = side_by_side(fns, items=1, seconds=0.0, rounds=4)  # one call a turn
    assert calls == list("abc" + "abc" + "bca" + "cab" + "abc")  # warm-up, then 4 rounds
    assert set(measured.rounds) == set("abc")
    assert all(len(r) == 4 and min(r) > 0 for r in measured.rounds.values())


def test_rates_are_items_per_second_of_each_system() -> None:
    fns = {"fast": lambda: time.sleep(0.004), "slow": lambda: time.sleep(0.012)}
    measured = side_by_side(fns, items=8, seconds=0.3, rounds=3)
    assert 8 / 0.012 * 0.5 < measured.rate("slow") <= 8 / 0.012
    ratio, lowest, highest = measured.ratio("fast", "slow")
    assert 1.5 < ratio < 3.5  # 3x, with room for a busy machine
    assert lowest <= ratio <= highest


def test_a_ratio_is_taken_round_by_round() -> None:
    """A slow stretch that hits both systems of a round leaves that round's ratio alone:
    the median of the rounds' ratios, not the ratio of the medians."""
    measured = Turns({"a": [100.0, 50.0, 100.0, 40.0], "b": [50.0, 25.0, 50.0, 20.0]})
    assert measured.ratio("a", "b") == (2.0, 2.0, 2.0)
    assert measured.rate("a") == 75.0
    skewed = Turns({"a": [100.0, 10.0, 60.0], "b": [50.0, 20.0, 20.0]})
    assert skewed.ratio("a", "b") == (2.0, 0.5, 3.0)  # the medians' ratio would say 3
