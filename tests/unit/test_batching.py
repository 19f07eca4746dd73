from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from genserve.batching import BatchStats, MicroBatcher
from genserve.config import BatchingSettings
from genserve.errors import Overloaded, QueueTimeout


def _double(rows: list[int], key: Any) -> list[int]:
    return [2 * r for r in rows]


def test_concurrent_requests_share_one_call_and_get_their_own_rows() -> None:
    stats: list[BatchStats] = []

    async def main() -> list[list[int]]:
        b = MicroBatcher(
            _double, max_batch_size=64, max_latency_ms=50, max_queue=1000, observe=stats.append
        )
        inputs = [[i] * (i + 1) for i in range(6)]
        outs = await asyncio.gather(*(b.submit(x) for x in inputs))
        b.close()
        return [list(o) for o in outs]

    outs = asyncio.run(main())
    assert outs == [[2 * i] * (i + 1) for i in range(6)]
    assert sum(s.rows for s in stats) == 21
    assert max(s.requests for s in stats) > 1  # batched across requests
    assert all(len(s.queue_seconds) == s.requests for s in stats)


def test_batches_never_exceed_max_batch_size_but_a_large_request_runs_alone() -> None:
    stats: list[BatchStats] = []

    async def main() -> None:
        b = MicroBatcher(
            _double, max_batch_size=8, max_latency_ms=20, max_queue=1000, observe=stats.append
        )
        await asyncio.gather(*(b.submit([0] * 3) for _ in range(5)), b.submit([0] * 20))
        b.close()

    asyncio.run(main())
    assert all(s.rows <= 8 for s in stats if s.requests > 1)
    assert any(s.rows == 20 and s.requests == 1 for s in stats)
    assert sum(s.rows for s in stats) == 35


def test_only_requests_with_equal_keys_share_a_call() -> None:
    seen: list[tuple[Any, list[int]]] = []

    def record(rows: list[int], key: Any) -> list[int]:
        seen.append((key, list(rows)))
        return rows

    async def main() -> list[Any]:
        b = MicroBatcher(record, max_batch_size=64, max_latency_ms=30, max_queue=100)
        outs = await asyncio.gather(
            b.submit([1], "a"), b.submit([2], "b"), b.submit([3], "a"), b.submit([4], "b")
        )
        b.close()
        return [list(o) for o in outs]

    assert asyncio.run(main()) == [[1], [2], [3], [4]]
    for key, rows in seen:
        assert all((r % 2 == 1) == (key == "a") for r in rows)
    assert len(seen) == 2  # one call per key


def test_full_queue_is_refused_at_once() -> None:
    gate = threading.Event()

    def slow(rows: list[int], key: Any) -> list[int]:
        gate.wait(5)
        return rows

    async def main() -> None:
        b = MicroBatcher(slow, max_batch_size=4, max_latency_ms=0, max_queue=8)
        first = asyncio.ensure_future(b.submit([0] * 4))
        await asyncio.sleep(0.05)  # the first batch is running; 8 more rows fill the queue
        queued = [asyncio.ensure_future(b.submit([0] * 4)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await b.submit([0])
        gate.set()
        await asyncio.gather(first, *queued)
        b.close()

    asyncio.run(main())


def test_a_failing_call_fails_its_requests_and_the_batcher_goes_on() -> None:
    calls = 0

    def flaky(rows: list[int], key: Any) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return rows

    async def main() -> None:
        b = MicroBatcher(flaky, max_batch_size=4, max_latency_ms=0, max_queue=8)
        with pytest.raises(RuntimeError, match="boom"):
            await b.submit([0])
        assert list(await b.submit([1])) == [1]
        b.close()

    asyncio.run(main())


@pytest.mark.parametrize("max_calls", [1, 3])
def test_idle_runs_at_once_and_busy_batches(max_calls: int) -> None:
    """With no wait configured (the default), a request to an idle model runs alone at
    once, and the requests that arrive while it runs share the next call. With more calls
    allowed too: requests like the running one (one row, cost 1) are not cheaper than it,
    so they do not overtake (a busy model's batches are not split into smaller calls)."""
    gate, calls = threading.Event(), []

    def run(rows: list[int], key: Any) -> list[int]:
        calls.append(list(rows))
        gate.wait(5)
        return rows

    async def main() -> None:
        settings = BatchingSettings(max_batch_size=8, max_calls=max_calls)
        b = MicroBatcher.from_settings(run, settings, lambda s: None)
        assert b.max_latency_s == 0  # the default: no timer
        first = asyncio.ensure_future(b.submit([1]))
        await asyncio.sleep(0.05)
        assert calls == [[1]]  # did not wait for company
        later = [asyncio.ensure_future(b.submit([i])) for i in (2, 3, 4)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *later)
        assert calls == [[1], [2, 3, 4]]  # those that came while it ran: one call
        b.close()

    asyncio.run(main())


def _blocking(ran: list[int], gate: threading.Event) -> Any:
    def run(rows: list[int], key: Any) -> list[int]:
        gate.wait(5)
        ran.extend(rows)
        return rows

    return run


@pytest.mark.usefixtures("no_gc_pauses")
def test_a_request_queued_past_its_deadline_fails_in_time_and_is_never_run() -> None:
    ran: list[int] = []
    dropped: list[str] = []
    gate = threading.Event()

    async def main() -> tuple[Any, float, Any]:
        b = MicroBatcher(
            _blocking(ran, gate),
            max_batch_size=1,
            max_latency_ms=0,
            max_queue=100,
            deadline_s=0.3,
            on_drop=dropped.append,
        )
        first = asyncio.ensure_future(b.submit([1]))  # runs, held by the gate
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        second = await asyncio.gather(b.submit([2]), return_exceptions=True)
        waited = loop.time() - started
        depth = b.queued_rows
        gate.set()
        outcome = await asyncio.gather(first, return_exceptions=True)
        await asyncio.sleep(0.1)  # the loop goes on: [2] must not run now
        b.close()
        return second[0], waited, (outcome[0], depth)

    second, waited, (first, depth) = asyncio.run(main())
    assert isinstance(second, QueueTimeout) and second.http_status == 504
    assert "not run" in str(second)
    assert 0.3 <= waited <= 0.3 * 1.1
    assert depth == 0
    assert dropped == ["deadline"]
    # The first was running at its deadline: its caller is answered, nothing is dropped.
    assert isinstance(first, QueueTimeout) and "not run" not in str(first)
    assert ran == [1]


def test_a_caller_that_goes_away_leaves_the_queue_and_is_never_run() -> None:
    ran: list[int] = []
    dropped: list[str] = []
    gate = threading.Event()

    async def main() -> int:
        b = MicroBatcher(
            _blocking(ran, gate),
            max_batch_size=8,
            max_latency_ms=0,
            max_queue=100,
            on_drop=dropped.append,
        )
        first = asyncio.ensure_future(b.submit([1]))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(b.submit([2, 2]))
        kept = asyncio.ensure_future(b.submit([3]))
        await asyncio.sleep(0.05)
        gone.cancel()
        await asyncio.sleep(0)
        depth = b.queued_rows
        gate.set()
        assert list(await kept) == [3] and list(await first) == [1]
        b.close()
        return depth

    assert asyncio.run(main()) == 1
    assert dropped == ["cancelled"]
    assert ran == [1, 3]


def test_deadline_comes_from_the_route_unless_settings_name_one() -> None:
    b = MicroBatcher.from_settings(_double, BatchingSettings(), lambda _s: None, deadline_s=30)
    assert b.deadline_s == 30
    b = MicroBatcher.from_settings(
        _double, BatchingSettings(deadline_s=5), lambda _s: None, deadline_s=30
    )
    assert b.deadline_s == 5


def test_iterative_calls_take_joiners_between_iterations_and_answer_each_when_done() -> None:
    """A request queued while an iterative call runs joins it at its next iteration,
    whatever its key (each joiner brings its own), and each request is answered when its
    own rows are done: short ones that joined late before the long one that started the
    call, which is the only call."""
    joined: dict[int, tuple[int, Any]] = {}  # first row value -> (iteration, key) it joined at
    order: list[int] = []
    calls: list[Any] = []
    started = threading.Event()

    def run(feed: Any, key: Any) -> None:
        calls.append(key)
        rows: dict[int, tuple[list[int], Any]] = {}  # ticket -> iterations left per row, key
        iteration = 0
        while True:
            for ticket, items, item_key in feed.take(feed.max_rows - feed.rows):
                rows[ticket] = (list(items), item_key)
                joined[items[0]] = (iteration, item_key)
            if not rows:
                return
            started.set()
            threading.Event().wait(0.01)  # one "decoder step"
            iteration += 1
            for ticket in list(rows):
                left, item_key = rows[ticket]
                rows[ticket] = ([r - 1 for r in left], item_key)
                if max(rows[ticket][0]) <= 0:
                    order.append(ticket)
                    feed.finish(ticket, [f"{item_key}:done"] * len(rows.pop(ticket)[0]))

    async def main() -> list[Any]:
        b = MicroBatcher(run, max_batch_size=8, max_latency_ms=0, max_queue=100, iterative=True)
        long = asyncio.ensure_future(b.submit([30], key="a"))
        while not started.is_set():
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.03)
        short = asyncio.ensure_future(b.submit([2, 1], key="a"))
        other = asyncio.ensure_future(b.submit([3], key="b"))
        outs = [await short, await other]
        assert not long.done()
        outs += [await long]
        assert b.idle
        b.close()
        return outs

    outs = asyncio.run(main())
    assert [list(o) for o in outs] == [["a:done"] * 2, ["b:done"], ["a:done"]]
    assert joined[30] == (0, "a") and 0 < joined[2][0] < 30  # joined the running call
    assert joined[3] == (joined[2][0], "b")  # another key joins it too, at the same step
    assert calls == ["a"]


def test_a_cheaper_batch_overtakes_a_running_costlier_one_and_a_costlier_one_waits() -> None:
    """max_calls 2: beside the running head call, the cheapest queued request starts at
    once when it costs less (here rows times the key); one that costs as much waits for
    the head call, and everything waits while both calls run. When the head call ends,
    the queue's oldest request starts at once, beside a cheap call still running."""
    gates = {"big": threading.Event(), "small": threading.Event()}
    started: list[tuple[Any, list[int]]] = []

    def run(rows: list[int], key: Any) -> list[int]:
        started.append((key, list(rows)))
        gates["big" if key == 8 else "small"].wait(5)
        return rows

    async def main() -> None:
        b = MicroBatcher(
            run,
            max_batch_size=64,
            max_latency_ms=0,
            max_queue=100,
            max_calls=2,
            cost=lambda rows, key: float(rows * key),
        )
        big = asyncio.ensure_future(b.submit([1, 1], key=8))  # cost 16, runs at once
        await asyncio.sleep(0.05)
        same = asyncio.ensure_future(b.submit([2, 2], key=8))  # cost 16: not cheaper
        small = [asyncio.ensure_future(b.submit([3], key=1)) for _ in range(2)]  # cost 1 each
        await asyncio.sleep(0.05)
        # The two cheap requests overtook, as one call; the costly one still waits.
        assert started == [(8, [1, 1]), (1, [3, 3])]
        third = asyncio.ensure_future(b.submit([4], key=1))
        await asyncio.sleep(0.05)
        assert len(started) == 2  # both calls busy: it waits
        gates["small"].set()
        await asyncio.gather(*small, third)
        assert started[2] == (1, [4])  # a call came free: it overtook again
        assert not same.done()
        gates["small"].clear()
        fourth = asyncio.ensure_future(b.submit([5], key=1))
        await asyncio.sleep(0.05)
        assert started[3] == (1, [5])  # overtaking, held
        gates["big"].set()
        assert list(await big) == [1, 1]
        await asyncio.sleep(0.05)
        # The queue's next request starts as the head call while the cheap one runs.
        assert started[4] == (8, [2, 2])
        gates["small"].set()
        assert list(await same) == [2, 2] and list(await fourth) == [5]
        assert b.idle
        b.close()

    asyncio.run(main())


def test_one_call_at_a_time_by_default_whatever_the_cost() -> None:
    gate, started = threading.Event(), []

    def run(rows: list[int], key: Any) -> list[int]:
        started.append(key)
        gate.wait(5)
        return rows

    async def main() -> None:
        b = MicroBatcher.from_settings(
            run, BatchingSettings(), lambda s: None, cost=lambda rows, key: float(key)
        )
        assert b.max_calls == 1
        first = asyncio.ensure_future(b.submit([1], key=100))
        await asyncio.sleep(0.05)
        cheap = asyncio.ensure_future(b.submit([1], key=1))
        await asyncio.sleep(0.05)
        assert started == [100]
        gate.set()
        await asyncio.gather(first, cheap)
        assert started == [100, 1]
        b.close()

    asyncio.run(main())
