"""Asynchronous generation jobs: submit, progress with a preview, result, cancel.

A bounded store of jobs run one at a time by one worker thread (a generation already
uses every core through ONNX Runtime). Finished jobs are kept for ``keep_s`` seconds,
then forgotten. Library code: no HTTP here.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genserve.errors import NotFound, Overloaded
from genserve.imagegen.pipeline import Cancelled

# work(on_step) -> result; on_step(step, steps, preview uint8 image or None) -> keep going?
Work = Callable[[Callable[[int, int, np.ndarray | None], bool]], Any]


@dataclass
class Job:
    id: str
    steps: int
    status: str = "queued"  # queued, running, cancelling, succeeded, failed, cancelled
    seed: int | None = None  # the first image's seed (image i uses seed + i)
    step: int = 0
    preview: np.ndarray | None = None
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


class JobStore:
    def __init__(
        self,
        *,
        max_jobs: int = 64,
        keep_s: float = 600.0,
        on_count: Callable[[int], None] | None = None,
    ) -> None:
        """``on_count`` hears the number of unfinished jobs whenever it changes."""
        self.max_jobs, self.keep_s = max_jobs, keep_s
        self._on_count = on_count
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs")

    def unfinished(self) -> int:
        return sum(not j.done for j in list(self._jobs.values()))

    def _report(self) -> None:
        if self._on_count is not None:
            self._on_count(self.unfinished())

    def _expire(self) -> None:
        now = time.time()
        for jid in [
            j.id for j in self._jobs.values() if j.finished and now - j.finished > self.keep_s
        ]:
            del self._jobs[jid]

    def submit(self, steps: int, work: Work, *, seed: int | None = None) -> Job:
        with self._lock:
            self._expire()
            if self.unfinished() >= self.max_jobs:
                raise Overloaded(
                    f"{self.max_jobs} jobs are already waiting or running", retry_after_s=5.0
                )
            job = Job(uuid.uuid4().hex, steps, seed=seed)
            self._jobs[job.id] = job
        self._report()
        self._executor.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Work) -> None:
        with self._lock:  # against cancel(): a job is cancelled or running, never both
            cancelled = job.cancel.is_set()
            if cancelled:
                job.status, job.finished = "cancelled", time.time()
            else:
                job.status = "running"
        if cancelled:
            self._report()
            return

        def on_step(step: int, steps: int, preview: np.ndarray | None) -> bool:
            job.step, job.steps = step, steps
            if preview is not None:
                job.preview = preview
            return not job.cancel.is_set()

        try:
            job.result = work(on_step)
            job.status = "succeeded"
        except Cancelled:
            job.status = "cancelled"
        except Exception as exc:  # the job records it; the service keeps serving
            job.status, job.error = "failed", type(exc).__name__
        finally:
            job.finished = time.time()
            self._report()

    def get(self, job_id: str) -> Job:
        with self._lock:
            self._expire()
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} (unknown or expired)", field="job_id")
        return job

    def cancel(self, job_id: str) -> Job:
        """Ask a job to stop. A queued job is cancelled at once; a running one says
        "cancelling" until its next step ends it ("cancelled"); a finished one is left
        as it is."""
        job = self.get(job_id)
        job.cancel.set()
        with self._lock:
            if job.status == "queued":
                job.status, job.finished = "cancelled", time.time()
            elif job.status == "running":
                job.status = "cancelling"
        self._report()
        return job
