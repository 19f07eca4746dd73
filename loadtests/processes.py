"""The processes of a stack the load runner started: what each is, and the CPU it used.

``python -m loadtests`` (without ``--url``) reports, for the length of the Locust run, the
CPU seconds per second of each part of the stack (every model service, the gateway,
Locust itself: ``cpu.json`` beside the reports). A part near 1.0 on its one-CPU budget is
the bottleneck, and the utilisation is what queueing turns into waiting
(``python -m loadtests.queueing``).
"""

from __future__ import annotations

import resource

import psutil


def label(process: psutil.Process) -> str:
    """A process's part in the stack: the service it runs, and server or worker."""
    try:
        cmd = " ".join(process.cmdline())
    except psutil.Error:
        return f"pid {process.pid}"
    if "locust" in cmd:
        return "locust"
    for word in cmd.split():
        if ":" in word and word.startswith("services."):
            name = word.split(":")[0].removeprefix("services.")
            return f"{name} {'worker' if '_bentoml_impl.worker' in cmd else 'server'}"
    return f"pid {process.pid}"


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of every live process this one started, by
    service (its server and workers together), and of the children that have ended and
    been waited for (``ended``: Locust, after its run)."""
    out: dict[str, float] = {}
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            part = label(p).removesuffix(" worker").removesuffix(" server")
        except psutil.Error:
            continue
        out[part] = out.get(part, 0.0) + t.user + t.system
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["ended"] = ended.ru_utime + ended.ru_stime
    return out


def cpu_use(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """CPU seconds per second of each part between two ``cpu_seconds``; ``ended`` (the
    children that ended between them) is named ``locust``."""
    use = {}
    for part, spent in after.items():
        name = "locust" if part == "ended" else part
        use[name] = round((spent - before.get(part, 0.0)) / seconds, 2)
    return dict(sorted(use.items()))
