from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from genserve.batching import BatchStats, MicroBatcher
from genserve.errors import Overloaded


def _double(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"y": feeds["x"] * 2}


def test_concurrent_requests_share_one_call_and_get_their_own_rows() -> None:
    stats: list[BatchStats] = []

    async def main() -> list[np.ndarray]:
        b = MicroBatcher(
            _double, max_batch_size=64, max_latency_ms=50, max_queue=1000, observe=stats.append
        )
        inputs = [np.full((i + 1, 2), i, np.float32) for i in range(6)]
        outs = await asyncio.gather(*(b.submit({"x": x}) for x in inputs))
        b.close()
        return [o["y"] for o in outs]

    outs = asyncio.run(main())
    for i, y in enumerate(outs):
        np.testing.assert_array_equal(y, np.full((i + 1, 2), 2 * i, np.float32))
    assert sum(s.rows for s in stats) == 21
    assert max(s.requests for s in stats) > 1  # batched across requests
    assert all(len(s.queue_seconds) == s.requests for s in stats)


def test_batches_never_exceed_max_batch_size_but_a_large_request_runs_alone() -> None:
    stats: list[BatchStats] = []

    async def main() -> None:
        b = MicroBatcher(
            _double, max_batch_size=8, max_latency_ms=20, max_queue=1000, observe=stats.append
        )
        await asyncio.gather(
            *(b.submit({"x": np.zeros((3, 1))}) for _ in range(5)),
            b.submit({"x": np.zeros((20, 1))}),
        )
        b.close()

    asyncio.run(main())
    assert all(s.rows <= 8 for s in stats if s.requests > 1)
    assert any(s.rows == 20 and s.requests == 1 for s in stats)
    assert sum(s.rows for s in stats) == 35


def test_full_queue_is_refused_at_once() -> None:
    gate = threading.Event()

    def slow(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        gate.wait(5)
        return feeds

    async def main() -> None:
        b = MicroBatcher(slow, max_batch_size=4, max_latency_ms=0, max_queue=8)
        first = asyncio.ensure_future(b.submit({"x": np.zeros((4, 1))}))
        await asyncio.sleep(0.05)  # the first batch is running; 8 more rows fill the queue
        queued = [asyncio.ensure_future(b.submit({"x": np.zeros((4, 1))})) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await b.submit({"x": np.zeros((1, 1))})
        gate.set()
        await asyncio.gather(first, *queued)
        b.close()

    asyncio.run(main())


def test_a_failing_call_fails_its_requests_and_the_batcher_goes_on() -> None:
    calls = 0

    def flaky(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return feeds

    async def main() -> None:
        b = MicroBatcher(flaky, max_batch_size=4, max_latency_ms=0, max_queue=8)
        with pytest.raises(RuntimeError, match="boom"):
            await b.submit({"x": np.zeros((1, 1))})
        out = await b.submit({"x": np.ones((1, 1))})
        assert out["x"][0, 0] == 1
        b.close()

    asyncio.run(main())
