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

A request is never run for nobody. One still queued when its ``deadline_s`` passes (the
route's timeout: its caller has been answered 504 by then) fails with ``QueueTimeout``
and leaves the queue; one whose caller went away (its task cancelled) leaves at once.
Both are counted by ``on_drop(reason)``, "deadline" or "cancelled": dropped, not run.

Rows are independent in the models batched here, so a request's result does not
depend on what it was batched with.

Cheap work overtakes costly work (``max_calls`` > 1). Calls are taken in queue order,
one at a time, as above (the head call); beside it, up to ``max_calls`` - 1 more calls may
run, each formed from the cheapest queued request (and compatible ones behind it) when
that request costs less than the costliest request of every running call, and the whole
less than each running call (``cost(rows, key)``, rows by default: a service knows its
model's price of a row, beams for a search). So a cheap request does not wait for a
running batch of costly ones, while requests like those running wait for the next head
call and batch there as before (no call is split for nothing), and the queue's order
still decides the head call (nothing starves). The calls share the CPU; with
``max_calls`` 1 (the default) one call runs at a time.

Iteration-level batching (``iterative=True``, for a model that decodes step by step): the
call is ``run(feed, key)`` and lasts as long as it has rows. Before each of its
iterations it takes, through ``feed.take``, the requests at the head of the queue that fit,
whatever their key (each comes with its own: the model runs rows of different options in
one iteration, a greedy sentence beside beam searches), and hands each request its
results through ``feed.finish`` as soon as that request's rows are done, instead of when
the whole batch is. So no request waits for a running batch to end, and one call runs at a
time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from genserve.config import BatchingSettings
from genserve.errors import Overloaded, QueueTimeout

log = logging.getLogger("genserve.batching")

# run(rows, key) -> results sliceable by row (a list, or an array with rows first); with
# iterative=True, run(feed, key) -> None, results handed back through feed.finish.
RunFn = Callable[[Any, Any], Any]


@dataclass
class _Pending:
    items: Sequence[Any]
    key: Hashable
    enqueued: float
    future: asyncio.Future[Sequence[Any]] = field(repr=False)
    cost: float = 0.0  # what running it costs, in the service's units (rows by default)
    queued: bool = True  # still in the queue (not yet taken into a model call)

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
        deadline_s: float | None = None,
        observe: Callable[[BatchStats], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
        on_drop: Callable[[str], None] | None = None,
        iterative: bool = False,
        max_calls: int = 1,
        cost: Callable[[int, Any], float] | None = None,
    ) -> None:
        self._run = run
        self.iterative = iterative
        self.max_calls = 1 if iterative else max_calls
        self._cost = cost or (lambda rows, _key: float(rows))
        # The queue is shared with an iterative call's worker thread (Feed.take).
        self._lock = threading.Lock()
        self._on_depth = on_depth or (lambda _rows: None)  # queued rows, as they change
        self._on_drop = on_drop or (lambda _reason: None)  # a request dropped, not run
        self.deadline_s = deadline_s
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000.0
        self.max_queue = max_queue
        self._observe = observe
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._running = 0  # rows in the model calls now running
        # running call -> (its cost, the cost of its costliest request)
        self._calls: dict[asyncio.Task[None], tuple[float, float]] = {}
        self._head: asyncio.Task[None] | None = None  # the running call taken in queue order
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        # One thread per call: the model session parallelises inside a call.
        self._executor = ThreadPoolExecutor(max_workers=self.max_calls, thread_name_prefix="batch")

    @classmethod
    def from_settings(
        cls,
        run: RunFn,
        settings: BatchingSettings,
        observe: Callable[[BatchStats], None],
        on_depth: Callable[[int], None] | None = None,
        on_drop: Callable[[str], None] | None = None,
        *,
        deadline_s: float | None = None,
        iterative: bool = False,
        cost: Callable[[int, Any], float] | None = None,
    ) -> MicroBatcher:
        """``deadline_s``: the route's timeout, unless the settings name their own."""
        return cls(
            run,
            max_batch_size=settings.max_batch_size,
            max_latency_ms=settings.max_latency_ms,
            max_queue=settings.max_queue,
            deadline_s=settings.deadline_s or deadline_s,
            observe=observe,
            on_depth=on_depth,
            on_drop=on_drop,
            iterative=iterative,
            max_calls=settings.max_calls,
            cost=cost,
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
        pending = _Pending(
            items, key, time.perf_counter(), loop.create_future(), cost=self._cost(rows, key)
        )
        with self._lock:
            self._queue.append(pending)
            self._queued_rows += rows
            self._on_depth(self._queued_rows)
        assert self._wakeup is not None
        self._wakeup.set()
        timer = None
        if self.deadline_s is not None:
            timer = loop.call_later(self.deadline_s, self._expire, pending)
        try:
            return await pending.future
        except asyncio.CancelledError:  # the caller went away: its rows are not run
            if self._forget(pending):
                self._on_drop("cancelled")
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _forget(self, pending: _Pending) -> bool:
        """Take a request out of the queue; False when it has left it already."""
        with self._lock:
            if not pending.queued:
                return False
            pending.queued = False
            self._queue.remove(pending)
            self._queued_rows -= pending.rows
            self._on_depth(self._queued_rows)
            return True

    def _expire(self, pending: _Pending) -> None:
        """Its deadline passed. Still queued: dropped, never run. In the running call: the
        caller is answered now, and the call's result for it is thrown away."""
        if pending.future.done():
            return
        waited = time.perf_counter() - pending.enqueued
        if self._forget(pending):
            self._on_drop("deadline")
            why = "still queued; it was not run"
        else:
            why = "its model call had not finished"
        pending.future.set_exception(
            QueueTimeout(f"no result within the deadline of {self.deadline_s:g} s ({why})")
        )
        log.info("request dropped after %.3f s: %s", waited, why)

    def _take_batch(self) -> tuple[list[_Pending], bool] | None:
        """The next call's requests and whether it is the head call, or None while none
        may start. The head call (one at a time) takes the oldest request and, in queue
        order, compatible ones that still fit. Beside a running head call (``max_calls``):
        the cheapest request, if it costs less than the costliest request of each running
        call, and compatible ones behind it that do too, while the whole costs less than
        each running call."""
        with self._lock:
            if not self._queue or len(self._calls) >= self.max_calls:
                return None
            head = self._head is None
            # bounds on the whole's and on each request's cost (none for the head call)
            below = each = math.inf
            if head:
                first = self._queue[0]
            else:
                below = min(total for total, _ in self._calls.values())
                each = min(largest for _, largest in self._calls.values())
                first = min(self._queue, key=lambda p: p.cost)
                if first.cost >= min(below, each):
                    return None
            self._queue.remove(first)
            first.queued = False
            batch, rows, cost = [first], first.rows, first.cost
            rest = deque[_Pending]()
            while self._queue:
                p = self._queue.popleft()
                if (
                    p.key == first.key
                    and rows + p.rows <= self.max_batch_size
                    and cost + p.cost < below
                    and p.cost < each
                ):
                    p.queued = False
                    batch.append(p)
                    rows += p.rows
                    cost += p.cost
                else:
                    rest.append(p)
            self._queue = rest
            self._queued_rows -= rows
            self._on_depth(self._queued_rows)
            return batch, head

    def _take_joiners(self, room: int) -> list[_Pending]:
        """Queued requests at the head of the queue that fit in ``room`` rows, in order
        (worker thread: an iterative call between two iterations)."""
        taken: list[_Pending] = []
        if not self._queue:  # (a racy read: the next iteration looks again)
            return taken
        with self._lock:
            while self._queue and self._queue[0].rows <= room:
                p = self._queue.popleft()
                p.queued = False
                taken.append(p)
                room -= p.rows
                self._queued_rows -= p.rows
            if taken:
                self._on_depth(self._queued_rows)
        return taken

    async def _loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue  # (it may have left again before this task ran)
            if not self._calls:
                # Give concurrent requests a moment to join, unless the batch is full.
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
            taken = self._take_batch()
            if taken is None:  # every call busy, or nothing cheap enough to start beside
                self._wakeup.clear()  # them: wait for one to end or a request to come
                await self._wakeup.wait()
                continue
            batch, head = taken
            live = [p for p in batch if not p.future.done()]
            if not live:
                continue
            if self.iterative:
                await self._run_iterative(live)
                continue
            self._running += sum(p.rows for p in live)
            call = loop.create_task(self._call(live))
            self._calls[call] = (sum(p.cost for p in live), max(p.cost for p in live))
            if head:
                self._head = call

    async def _call(self, live: list[_Pending]) -> None:
        """One model call for ``live``; each request gets its slice of the results."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        merged = [item for p in live for item in p.items]
        try:
            outputs = await loop.run_in_executor(self._executor, self._run, merged, live[0].key)
        except Exception as exc:  # every waiter gets the error; the loop goes on
            for p in live:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        finally:
            self._running -= len(merged)
            task = asyncio.current_task()
            if task is not None:
                self._calls.pop(task, None)
                if self._head is task:
                    self._head = None
            if self._wakeup is not None:
                self._wakeup.set()
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

    async def _run_iterative(self, first: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        feed = Feed(self, first, loop)
        try:
            await loop.run_in_executor(self._executor, self._run, feed, feed.key)
        except Exception as exc:  # every request not yet answered gets the error
            for p in feed.unfinished():
                if not p.future.done():
                    p.future.set_exception(exc)
        finally:
            self._running = 0

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        for call in list(self._calls):
            call.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


class Feed:
    """An iterative call's view of the queue, used from its worker thread: ``take`` the
    requests that join now (the call's first batch, then queued ones of any key),
    ``finish`` each one as its rows are done. Tickets name requests."""

    def __init__(
        self, batcher: MicroBatcher, first: list[_Pending], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._batcher, self._loop = batcher, loop
        self.key = first[0].key
        self._first: list[_Pending] | None = first
        self._open: dict[int, tuple[_Pending, float]] = {}  # ticket -> request, joined at
        self._company: dict[int, int] = {}  # ticket -> most rows decoded beside it (itself in)
        self._tickets = 0
        self.rows = 0  # rows taken and not finished

    @property
    def max_rows(self) -> int:
        return self._batcher.max_batch_size

    def take(self, room: int) -> list[tuple[int, Sequence[Any], Hashable]]:
        """Requests to add before the next iteration, at most ``room`` rows (the first
        call's batch whatever its size), as (ticket, rows, key)."""
        joining: list[_Pending] = []
        if self._first is not None:
            joining, self._first = self._first, None
            room -= sum(p.rows for p in joining)
        if room > 0:
            joining += self._batcher._take_joiners(room)
        now = time.perf_counter()
        out = []
        for p in joining:
            if p.future.done():  # answered meanwhile (its deadline): not run
                continue
            self._tickets += 1
            self.rows += p.rows
            self._open[self._tickets] = (p, now)
            out.append((self._tickets, p.items, p.key))
        for ticket in self._open:
            self._company[ticket] = max(self._company.get(ticket, 0), self.rows)
        self._batcher._running = self.rows
        return out

    def finish(self, ticket: int, results: Sequence[Any]) -> None:
        """The request's results (one per row, in order): it is answered now."""
        p, joined = self._open.pop(ticket)
        company = self._company.pop(ticket)
        self.rows -= p.rows
        self._batcher._running = self.rows
        now = time.perf_counter()
        self._loop.call_soon_threadsafe(self._answer, p, results)
        if self._batcher._observe is not None:  # one observation per request: the most
            # rows it was decoded beside (itself in), its wait, its time in the call
            stats = BatchStats(company, 1, (joined - p.enqueued,), now - joined)
            self._loop.call_soon_threadsafe(self._batcher._observe, stats)

    @staticmethod
    def _answer(p: _Pending, results: Sequence[Any]) -> None:
        if not p.future.done():
            p.future.set_result(results)

    def unfinished(self) -> list[_Pending]:
        return [p for p, _ in self._open.values()] + list(self._first or [])
