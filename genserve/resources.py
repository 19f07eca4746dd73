"""Process and GPU resources, sampled on a background thread of each serving process.

CPU time and resident memory come from psutil; GPU utilisation and memory from NVML
(nvidia-ml-py). Where no NVIDIA driver exists (this machine, a CPU container) NVML does
not initialise and no GPU series appear: the dashboards' GPU panels then say "no data",
which is the truth.
"""

from __future__ import annotations

import logging
import threading
import time

import psutil

from genserve.metrics import (
    GPU_MEMORY_TOTAL,
    GPU_MEMORY_USED,
    GPU_UTILIZATION,
    PROCESS_CPU_SECONDS,
    PROCESS_MEMORY,
)

log = logging.getLogger("genserve.resources")


def read_gpus() -> list[tuple[str, float, int, int]] | None:
    """(index, utilisation 0..1, memory used, memory total) per GPU; None without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            out.append((str(i), util.gpu / 100.0, int(memory.used), int(memory.total)))
        return out
    except Exception:  # no library, no driver, no device: no GPU to report
        return None


def sample_once(service: str, process: psutil.Process, last_cpu: float, gpus: bool) -> float:
    """Record one sample; returns the CPU seconds seen, for the next delta."""
    times = process.cpu_times()
    cpu = times.user + times.system
    PROCESS_CPU_SECONDS.labels(service).inc(max(0.0, cpu - last_cpu))
    PROCESS_MEMORY.labels(service).set(process.memory_info().rss)
    for gpu, utilization, used, total in (read_gpus() or []) if gpus else []:
        GPU_UTILIZATION.labels(gpu).set(utilization)
        GPU_MEMORY_USED.labels(gpu).set(used)
        GPU_MEMORY_TOTAL.labels(gpu).set(total)
    return cpu


def start_sampler(service: str, interval_s: float = 5.0) -> threading.Thread:
    """Sample this process (and the GPUs, if NVML sees any) every ``interval_s``."""
    gpus = read_gpus() is not None
    if not gpus:
        log.info("no NVIDIA GPU visible (NVML): GPU metrics off")
    process = psutil.Process()

    def loop() -> None:
        last = 0.0
        while True:
            last = sample_once(service, process, last, gpus)
            time.sleep(interval_s)

    thread = threading.Thread(target=loop, name="resource-metrics", daemon=True)
    thread.start()
    return thread
