"""What every model service does, written once: build its settings, load and verify its
model (timed, with its provider recorded), start the resource sampler and the batcher,
and say when it is ready.

A model service subclasses ``ModelService[ItsModel]`` and names its kind; its model is
the kind's served model (genserve.serving.ServedModel), its batcher runs
``run_batch`` (the model's own, unless the service overrides it).
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from types import FrameType
from typing import Any, ClassVar, Generic, TypeVar, cast

from genserve import kinds, resources
from genserve.batching import MicroBatcher
from genserve.config import Settings
from genserve.errors import NotReady, ShuttingDown
from genserve.kinds import KindSettings, ModelKind
from genserve.metrics import batch_observer, drop_counter, queue_gauge, record_model
from genserve.serving import ServedModel
from services.wire import Limits

M = TypeVar("M", bound=ServedModel)
log = logging.getLogger("genserve.service")


def service_config(name: str, timeout_s: float) -> dict[str, Any]:
    """The BentoML settings every genserve service shares: one worker per service, the
    request timeout, and three things off (its request metrics: see below). BentoML's
    access log: genserve logs its own lines, with the request id. OpenTelemetry spans:
    no exporter is configured, and making them took about a fifth of a small request's
    time on the event loop (profiled on the GAN service); a deployment that exports
    traces turns them back on with
    ``BENTOML_CONFIG_OPTIONS='services.<name>.tracing.excluded_urls=[]'``."""
    return {
        "name": name,
        "workers": 1,
        "traffic": {"timeout": timeout_s},
        "logging": {"access": {"enabled": False}},
        "tracing": {"excluded_urls": ".*"},
        # BentoML's request metrics label every series with the raw path: each job id or
        # stray path became series for good (200 random 404s grew /metrics from 9 KB to
        # 830 KB). genserve serves /metrics itself (services/fastpath.py, the gateway's
        # pages), with route templates at the gateway.
        "metrics": {"enabled": False},
    }


def drain_on_sigterm(
    name: str, drain_s: float, busy: Callable[[], bool], begin: Callable[[], None]
) -> None:
    """On SIGTERM: ``begin`` at once (the service says not ready and refuses new work with
    503), then, once ``busy`` says the work already taken has finished (``drain_s`` at
    most), the server's own handler (uvicorn's, installed before the service is built)
    runs and stops it. A second SIGTERM changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals are the main thread's; no draining without them
    previous = signal.getsignal(signal.SIGTERM)
    started = threading.Event()

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if started.is_set():
            return
        started.set()
        begin()
        log.info("%s: SIGTERM, draining (at most %g s)", name, drain_s)

        def then_stop() -> None:
            deadline = time.monotonic() + drain_s
            while time.monotonic() < deadline and busy():
                time.sleep(0.05)
            if callable(previous):
                previous(sig, frame)

        threading.Thread(target=then_stop, name="drain", daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)


class ModelService(Generic[M]):
    kind_name: ClassVar[str]  # the kind in genserve.kinds this service serves
    limits: ClassVar[Limits]  # its app's wire limits (set from settings at start-up)

    kind: ModelKind
    settings: KindSettings
    model: str  # the model folder's name: the metrics' model label

    def __init__(self) -> None:
        settings = Settings()
        self.kind = kinds.get(self.kind_name)
        self.settings = self.kind.settings()
        self.limits.max_body_bytes = settings.server.max_body_bytes
        self.model = self.settings.model
        self.ready = False
        self.draining = False
        self._drain_s = settings.server.drain_s
        self._served: M | None = None
        self._batcher: MicroBatcher | None = None
        resources.start_sampler(self.kind.name)
        # Loading and warming up a model takes seconds. The worker serves meanwhile:
        # /livez says alive, /readyz not ready, and a model's route answers 503 not_ready
        # (with Retry-After) instead of nothing.
        loader = threading.Thread(target=self._load, args=(settings,), name="model-load")
        loader.daemon = True
        loader.start()
        drain_on_sigterm(self.kind.name, self._drain_s, self.busy, self._begin_drain)

    def _begin_drain(self) -> None:
        self.draining = True

    def busy(self) -> bool:
        """Whether work already taken is still running (a service adds its own, jobs)."""
        return self._batcher is not None and not self._batcher.idle

    def _load(self, settings: Settings) -> None:
        started = time.perf_counter()
        try:
            served = cast(M, self.kind.load(settings.models, settings.runtime, self.model))
        except Exception:  # the service stays alive and not ready; the log says why
            log.exception("%s: cannot load model %r", self.kind.name, self.model)
            return
        record_model(self.model, time.perf_counter() - started, served.provider)
        iterative = self.run_iterative if self.iterative else None
        self._batcher = MicroBatcher.from_settings(
            iterative or self.run_batch,
            self.settings,
            batch_observer(self.model),
            queue_gauge(self.model, self.settings.max_queue),
            drop_counter(self.model),
            deadline_s=self.kind.timeout_s,
            iterative=iterative is not None,
            cost=served.cost,
        )
        self._served = served
        self.loaded(served)
        # Everything built so far (BentoML, FastAPI, the model's objects) lives as long as
        # the process: out of the collector's way, so that a full collection under load
        # scans only what requests made, not the whole heap. Without it, probes under
        # saturation stalled up to half a second now and then (tests/e2e/test_probes.py).
        gc.freeze()
        self.ready = True  # the model's sessions have warmed up while loading
        log.info("%s: model %r ready", self.kind.name, self.model)

    def loaded(self, served: M) -> None:
        """Called once the model is loaded, before the service says it is ready: a
        service sets up here what needs its model."""

    @property
    def served(self) -> M:
        """The served model, or 503 not_ready while it is loading or draining."""
        if self.draining:
            raise ShuttingDown(f"the {self.kind.name} service is shutting down")
        if self._served is None:
            raise NotReady(f"the {self.kind.name} model is loading; retry shortly")
        return self._served

    @property
    def batcher(self) -> MicroBatcher:
        if self._batcher is None:
            raise NotReady(f"the {self.kind.name} model is loading; retry shortly")
        return self._batcher

    @property
    def working_model(self) -> M:
        """The model, for work already taken (which finishes while draining)."""
        assert self._served is not None, "work is taken only once the model is loaded"
        return self._served

    def run_batch(self, rows: list[Any], key: Hashable) -> Sequence[Any]:
        """One batch of rows that share ``key``, in the batcher's worker thread."""
        return self.working_model.run_batch(rows, key)

    @property
    def iterative(self) -> bool:
        """Whether the batcher runs ``run_iterative`` (batching by decoder step): a service
        whose model decodes step by step says so from its settings."""
        return False

    def run_iterative(self, feed: Any, key: Hashable) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """GET /v1/model: the served model's manifest summary and provider."""
        return self.served.describe()

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False) and not getattr(self, "draining", False)
