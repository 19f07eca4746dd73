"""Adaptive batching: rows from concurrent requests run in one model call.

A request submits a list of rows (latents, token sequences) and a ``key``: only
requests with equal keys (the same decoding options, image size, steps...) share a
call. One call runs at a time. A request that finds the model idle runs at once; the
requests that arrive while a call runs wait for it and then share the next call, so
batches grow with the load instead of with a timer. ``max_latency_ms`` (0 by default)
adds a wait for company when the model is idle. A call joins up to ``max_batch_size``
rows of compatible requests in queue order, runs ``run(rows, key)`` in a worker thread
and hands each request back its own slice of the results. The queue is bounded in
rows: a request that would overflow it is refused at once with ``Overloaded``.

Rows are independent in the models batched here, so a request's result does not
depend on what it was batched with.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from genserve.config import BatchingSettings
from genserve.errors import Overloaded

# run(rows, key) -> results sliceable by row (a list, or an array with rows first)
RunFn = Callable[[list[Any], Any], Any]


@dataclass
class _Pending:
    items: Sequence[Any]
    key: Hashable
    enqueued: float
    future: asyncio.Future[Sequence[Any]] = field(repr=False)

    @property
    def rows(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class BatchStats:
    """What one model call saw; handed to the ``observe`` callback."""

    rows: int
    requests: int
    queue_seconds: tuple[float, ...]
    inference_seconds: float


class MicroBatcher:
    def __init__(
        self,
        run: RunFn,
        *,
        max_batch_size: int,
        max_latency_ms: float,
        max_queue: int,
        observe: Callable[[BatchStats], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self._on_depth = on_depth or (lambda _rows: None)  # queued rows, as they change
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000.0
        self.max_queue = max_queue
        self._observe = observe
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._running = 0  # rows in the model call now running
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        # One thread: the model session parallelises inside a call.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")

    @classmethod
    def from_settings(
        cls,
        run: RunFn,
        settings: BatchingSettings,
        observe: Callable[[BatchStats], None],
        on_depth: Callable[[int], None] | None = None,
    ) -> MicroBatcher:
        return cls(
            run,
            max_batch_size=settings.max_batch_size,
            max_latency_ms=settings.max_latency_ms,
            max_queue=settings.max_queue,
            observe=observe,
            on_depth=on_depth,
        )

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def idle(self) -> bool:
        """Nothing queued and no model call running."""
        return self._queued_rows == 0 and self._running == 0

    async def submit(self, items: Sequence[Any], key: Hashable = None) -> Sequence[Any]:
        """Queue ``items`` (one per row) and await their results, in order."""
        rows = len(items)
        if self._queued_rows + rows > self.max_queue:
            raise Overloaded(
                f"queue full ({self._queued_rows} of {self.max_queue} rows waiting); retry later",
                retry_after_s=1.0,
            )
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._loop())
        pending = _Pending(items, key, time.perf_counter(), loop.create_future())
        self._queue.append(pending)
        self._queued_rows += rows
        self._on_depth(self._queued_rows)
        assert self._wakeup is not None
        self._wakeup.set()
        return await pending.future

    def _take_batch(self) -> list[_Pending]:
        """The oldest request and, in queue order, compatible ones that still fit."""
        first = self._queue.popleft()
        batch, rows, rest = [first], first.rows, deque[_Pending]()
        while self._queue:
            p = self._queue.popleft()
            if p.key == first.key and rows + p.rows <= self.max_batch_size:
                batch.append(p)
                rows += p.rows
            else:
                rest.append(p)
        self._queue = rest
        self._queued_rows -= rows
        self._on_depth(self._queued_rows)
        return batch

    async def _loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            # Give concurrent requests a moment to join, unless the batch is already full.
            deadline = self._queue[0].enqueued + self.max_latency_s
            while (
                self._queued_rows < self.max_batch_size
                and (left := deadline - time.perf_counter()) > 0
            ):
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), left)
                except TimeoutError:
                    break
            batch = self._take_batch()
            live = [p for p in batch if not p.future.cancelled()]
            if not live:
                continue
            started = time.perf_counter()
            merged = [item for p in live for item in p.items]
            self._running = len(merged)
            try:
                outputs = await loop.run_in_executor(self._executor, self._run, merged, live[0].key)
            except Exception as exc:  # every waiter gets the error; the loop goes on
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            finally:
                self._running = 0
            elapsed = time.perf_counter() - started
            offset = 0
            for p in live:
                part = outputs[offset : offset + p.rows]
                offset += p.rows
                if not p.future.done():
                    p.future.set_result(part)
            if self._observe is not None:
                self._observe(
                    BatchStats(
                        rows=offset,
                        requests=len(live),
                        queue_seconds=tuple(started - p.enqueued for p in live),
                        inference_seconds=elapsed,
                    )
                )

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
