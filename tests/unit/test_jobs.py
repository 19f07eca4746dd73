from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from genserve.errors import NotFound, Overloaded
from genserve.imagegen.jobs import JobStore
from genserve.imagegen.pipeline import Cancelled


def _wait(job, status: str) -> None:
    for _ in range(200):
        if job.status == status:
            return
        time.sleep(0.01)
    raise AssertionError(f"job is {job.status}, expected {status}")


def test_progress_preview_and_result() -> None:
    counts: list[int] = []
    store = JobStore(on_count=counts.append)

    def work(on_step):
        for i in range(3):
            assert on_step(i + 1, 3, np.full((2, 2, 3), i, np.uint8))
        return "done"

    job = store.submit(3, work)
    _wait(job, "succeeded")
    assert store.get(job.id).result == "done" and job.step == 3 and job.preview[0, 0, 0] == 2
    assert counts[0] == 1 and counts[-1] == 0


def test_cancel_running_and_queued_jobs() -> None:
    store = JobStore()
    started, release = threading.Event(), threading.Event()

    def slow(on_step):
        started.set()
        release.wait(5)
        if not on_step(1, 2, None):
            raise Cancelled()
        return "finished"

    running = store.submit(2, slow)
    queued = store.submit(2, slow)
    started.wait(5)
    assert store.cancel(queued.id).status == "cancelled"
    assert store.cancel(running.id).status == "cancelling"  # until its step ends it
    assert store.get(running.id).status == "cancelling" and not running.done
    release.set()
    _wait(running, "cancelled")
    assert store.cancel(running.id).status == "cancelled"  # finished: left as it is


def test_unknown_job_and_overload() -> None:
    store = JobStore(max_jobs=1)
    with pytest.raises(NotFound) as info:
        store.get("nope")
    assert info.value.field == "job_id"
    gate = threading.Event()
    store.submit(1, lambda on_step: gate.wait(5))
    with pytest.raises(Overloaded):
        store.submit(1, lambda on_step: None)
    gate.set()


def test_a_failing_job_records_the_error_and_the_store_goes_on() -> None:
    store = JobStore()

    def boom(on_step):
        raise RuntimeError("secret details")

    job = store.submit(1, boom)
    _wait(job, "failed")
    assert job.error == "RuntimeError"
    ok = store.submit(1, lambda on_step: 42)
    _wait(ok, "succeeded")
