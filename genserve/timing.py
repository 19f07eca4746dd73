"""Timing helpers for the benchmark commands."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass


def _rate(fn: Callable[[], object], items: int, seconds: float) -> float:
    """Items per second of ``fn`` over at least ``seconds`` and one call."""
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or runs < 1:
        fn()
        runs += 1
    return runs * items / elapsed


def turns(names: Sequence[str], rounds: int) -> Iterator[str]:
    """``names`` once per round, the starting one rotating from round to round."""
    for r in range(rounds):
        yield from list(names[r % len(names) :]) + list(names[: r % len(names)])


@dataclass(frozen=True)
class Turns:
    """What ``side_by_side`` measured: each system's items per second, round by round."""

    rounds: dict[str, list[float]]

    def rate(self, name: str) -> float:
        """A system's figure: the median of its rounds."""
        return statistics.median(self.rounds[name])

    def ratio(self, name: str, other: str) -> tuple[float, float, float]:
        """``name``'s rate over ``other``'s as (median, lowest, highest) of the rounds'
        ratios. The two ran next to each other in every round, so a round's ratio sees
        one state of the machine; the spread says how far that state moved the ratio."""
        ratios = [a / b for a, b in zip(self.rounds[name], self.rounds[other], strict=True)]
        return statistics.median(ratios), min(ratios), max(ratios)


def side_by_side(
    fns: Mapping[str, Callable[[], object]], items: int, seconds: float, rounds: int = 5
) -> Turns:
    """Items per second of each of ``fns`` (each handles ``items`` per call), measured in
    turns: every one is warmed up, then each round gives each ``seconds / rounds`` (one
    call at least), the order rotating from round to round. On a shared machine the load
    of other processes drifts over a run: one stretch per system, one after another,
    puts that drift into the ratios; turns spread it over every system alike."""
    names = list(fns)
    for name in names:
        fns[name]()
    rates: dict[str, list[float]] = {name: [] for name in names}
    for name in turns(names, rounds):
        rates[name].append(_rate(fns[name], items, seconds / rounds))
    return Turns(rates)
