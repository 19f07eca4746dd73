"""Every Prometheus metric genserve records, defined once.

Names carry the ``genserve_`` prefix and their unit; labels come from small fixed
sets. BentoML's own request metrics are off (``services/base.py`` ``service_config``):
they were labelled by the raw request path, so every distinct path a client sent (a job
id, a 404) made new series for good, 4 KB of /metrics each. In a BentoML worker,
PROMETHEUS_MULTIPROC_DIR is set before the service module is imported, so these land in
the multiprocess registry; ``exposition()`` renders it for /metrics.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from genserve.batching import BatchStats

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

STAGE_SECONDS = Histogram(
    "genserve_stage_duration_seconds",
    "Time a request spends in each stage: queue (waiting for a batch), inference "
    "(the model call of its batch), postprocess (encoding the response)",
    ["model", "stage"],
    buckets=_LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "genserve_batch_size",
    "Rows (images, sequences) per model call; a model batching by decoder step: per "
    "request, the most rows it was decoded beside",
    ["model"],
    buckets=_BATCH_BUCKETS,
)
SAMPLES = Counter(
    "genserve_samples",
    "Images produced (GAN samples and interpolation frames, generated images)",
    ["model"],
)


UNET_STEP_SECONDS = Histogram(
    "genserve_unet_step_duration_seconds",
    "One denoising step of a batch (UNet call and scheduler update)",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
JOBS_IN_PROGRESS = Gauge(
    "genserve_jobs_in_progress",
    "Image generation jobs queued or running",
    ["model"],
    multiprocess_mode="livesum",
)
TOKENS = Counter(
    "genserve_tokens",
    "Tokens read (direction=input, source tokens) and written (direction=output) by a "
    "sequence model",
    ["model", "direction"],
)


DROPPED = Counter(
    "genserve_requests_dropped_total",
    "Requests taken out of a model's batching queue unrun: deadline (the route's timeout "
    "passed while queued) or cancelled (the caller went away)",
    ["model", "reason"],
)
IN_PROGRESS = Gauge(
    "genserve_requests_in_progress",
    "HTTP requests a service is handling now (probes and scrapes included)",
    ["service"],
    multiprocess_mode="livesum",
)
QUEUE_ROWS = Gauge(
    "genserve_queue_rows",
    "Rows (images, texts) waiting in a model's batching queue: the autoscaling signal",
    ["model"],
    multiprocess_mode="livesum",
)
QUEUE_CAPACITY = Gauge(
    "genserve_queue_capacity_rows",
    "Rows a model's batching queue holds before it answers 503",
    ["model"],
    multiprocess_mode="livemax",
)
MODEL_LOAD_SECONDS = Gauge(
    "genserve_model_load_seconds",
    "Time to verify, load and warm up the model when the service started",
    ["model"],
    multiprocess_mode="livemax",
)
MODEL_INFO = Gauge(
    "genserve_model_info",
    "1 for the model a service runs, labelled with its ONNX Runtime execution provider",
    ["model", "provider"],
    multiprocess_mode="livemax",
)
PROCESS_CPU_SECONDS = Counter(
    "genserve_process_cpu_seconds",
    "CPU time used by a serving process (user + system), summed over its workers",
    ["service"],
)
PROCESS_MEMORY = Gauge(
    "genserve_process_resident_memory_bytes",
    "Resident memory of a serving process, summed over its workers",
    ["service"],
    multiprocess_mode="livesum",
)
GPU_UTILIZATION = Gauge(
    "genserve_gpu_utilization_ratio",
    "GPU busy fraction over the last sample period (NVML), where a GPU exists",
    ["gpu"],
    multiprocess_mode="livemax",
)
GPU_MEMORY_USED = Gauge(
    "genserve_gpu_memory_used_bytes",
    "GPU memory in use (NVML)",
    ["gpu"],
    multiprocess_mode="livemax",
)
GPU_MEMORY_TOTAL = Gauge(
    "genserve_gpu_memory_total_bytes",
    "GPU memory in all (NVML)",
    ["gpu"],
    multiprocess_mode="livemax",
)
GATEWAY_REQUESTS = Counter(
    "genserve_gateway_requests",
    "Requests the gateway answered, by route template, method and status",
    ["route", "method", "status"],
)
GATEWAY_SECONDS = Histogram(
    "genserve_gateway_request_duration_seconds",
    "Time from a request's arrival at the gateway to its response, by route template",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_SECONDS = Histogram(
    "genserve_gateway_upstream_duration_seconds",
    "Time a model service took to answer the gateway, by model",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)


def record_model(model: str, load_seconds: float, provider: str) -> None:
    """What a model service records once its model is loaded and warm."""
    MODEL_LOAD_SECONDS.labels(model).set(load_seconds)
    MODEL_INFO.labels(model, provider).set(1)


def queue_gauge(model: str, capacity: int) -> Callable[[int], None]:
    """A MicroBatcher ``on_depth`` callback keeping genserve_queue_rows current."""
    QUEUE_CAPACITY.labels(model).set(capacity)
    gauge = QUEUE_ROWS.labels(model)
    gauge.set(0)
    return gauge.set


def drop_counter(model: str) -> Callable[[str], None]:
    """A MicroBatcher ``on_drop`` callback counting genserve_requests_dropped_total."""
    for reason in ("deadline", "cancelled"):
        DROPPED.labels(model, reason)  # present at 0 from the start
    return lambda reason: DROPPED.labels(model, reason).inc()


def batch_observer(model: str) -> Callable[[BatchStats], None]:
    """A MicroBatcher ``observe`` callback recording queue, inference and batch size."""

    def observe(stats: BatchStats) -> None:
        for q in stats.queue_seconds:
            STAGE_SECONDS.labels(model, "queue").observe(q)
        STAGE_SECONDS.labels(model, "inference").observe(stats.inference_seconds)
        BATCH_SIZE.labels(model).observe(stats.rows)

    return observe


BACKEND_UP = Gauge(
    "genserve_gateway_backend_up",
    "1 when the gateway's last probe found the model service ready, else 0",
    ["model"],
    multiprocess_mode="livemax",
)
GATEWAY_REJECTIONS = Counter(
    "genserve_gateway_rejections",
    "Requests the gateway answered itself: unauthenticated, forbidden, rate_limited, "
    "overloaded, backend_unavailable, timeout",
    ["reason"],
)

SERVICE_RESTARTS = Counter(
    "genserve_service_restarts_total",
    "Services genserve serve started again after they exited",
    ["service"],
)


def exposition() -> bytes:
    """/metrics: every series of this process and, in Prometheus multiprocess mode (a
    BentoML worker), of its server's other processes."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)
