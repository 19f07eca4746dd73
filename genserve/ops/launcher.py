"""``genserve serve``: the whole graph on one machine (``make up``), each service its own
process: every model kind's service on a loopback port, and the gateway in front of them.

Ports from ``--port-base`` B: gateway HTTP B, gateway gRPC B+1, each model kind's service
B + its port offset (genserve.kinds: 10, 11, 12, ...). Model services always bind
loopback: callers use the gateway. The
launcher waits for every /readyz, prints the URLs and the authentication mode, and stops
everything when interrupted or when one service exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

import httpx

from genserve import cpus, kinds
from genserve.config import PROJECT_ROOT

GRPC_OFFSET = 1


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    target: str
    offset: int  # port = base port + offset
    env: dict[str, str] = field(default_factory=dict)
    cpus: tuple[int, ...] | None = None  # its core budget (CPU affinity); None = unpinned


def model_services(budget: bool = True) -> list[ServiceSpec]:
    """One service per registered model kind, each with its core budget
    (genserve.cpus.partition of the CPUs this process may use) unless ``budget`` is off."""
    shares = cpus.partition({k.name: k.cpu_weight for k in kinds.kinds()}, cpus.available())
    return [
        ServiceSpec(
            k.name, k.service, k.port_offset, cpus=tuple(shares[k.name]) if budget else None
        )
        for k in kinds.kinds()
    ]


def spawn(
    target: str,
    host: str,
    port: int,
    env: dict[str, str] | None = None,
    quiet: bool = False,
    log: IO[bytes] | None = None,
    cpus: Sequence[int] | None = None,
) -> subprocess.Popen[bytes]:
    """``bentoml serve target`` in its own session (so it can be stopped as a group).

    Each server gets its own BENTOML_HOME: BentoML keeps its Prometheus multiprocess files
    in one folder under it and empties that folder when a server starts, so servers
    sharing a home would erase (and mix) each other's metrics. Output goes to ``log``
    (stdout and stderr), nowhere (``quiet``), or this process's own streams. ``cpus``:
    the CPU affinity the server and every process and thread it starts inherit.
    """
    cmd = [sys.executable, "-m", "bentoml", "serve", target, "--host", host, "--port", str(port)]
    home = PROJECT_ROOT / "build" / "bentoml" / str(port)
    home.mkdir(parents=True, exist_ok=True)
    out: IO[bytes] | int | None = log if log is not None else subprocess.DEVNULL if quiet else None
    return subprocess.Popen(
        cmd,
        cwd=PROJECT_ROOT,
        env={**os.environ, "BENTOML_HOME": str(home), **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT if log is not None else out,
        start_new_session=True,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Seconds until ``url``/readyz answers 200; raises if the process exits or time runs out."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the service exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM to the server's group; SIGKILL if it has not gone after ``timeout``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def gateway_spec(base_port: int, auth: bool) -> ServiceSpec:
    env = {
        f"GENSERVE_GATEWAY_{s.name.upper()}_URL": f"http://127.0.0.1:{base_port + s.offset}"
        for s in model_services()
    }
    env["GENSERVE_GATEWAY_GRPC_PORT"] = str(base_port + GRPC_OFFSET)
    env["GENSERVE_GATEWAY_AUTH"] = "true" if auth else "false"
    return ServiceSpec("gateway", "services.gateway:Gateway", 0, env)


def serve(
    host: str = "127.0.0.1",
    base_port: int = kinds.DEFAULT_BASE_PORT,
    auth: bool = False,
    timeout: float = 120.0,
    budget: bool = True,
) -> int:
    """Start every service and the gateway; returns when they stop. ``budget``: give each
    model service its share of the CPUs (genserve.cpus), or let them all use every one."""
    gateway = gateway_spec(base_port, auth)
    procs: list[tuple[ServiceSpec, subprocess.Popen[bytes]]] = []
    for spec in (*model_services(budget), gateway):
        bind = host if spec is gateway else "127.0.0.1"
        env = {**spec.env, "GENSERVE_GATEWAY_GRPC_HOST": host} if spec is gateway else spec.env
        port = base_port + spec.offset
        procs.append((spec, spawn(spec.target, bind, port, env, cpus=spec.cpus)))

    def stop_all() -> None:
        for _spec, p in procs:
            stop(p)

    def on_sigterm(*_args: object) -> None:
        stop_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        deadline = time.monotonic() + timeout
        for spec, p in procs:  # they start together: waiting in turn costs nothing
            try:
                wait_ready(
                    f"http://127.0.0.1:{base_port + spec.offset}", p, deadline - time.monotonic()
                )
            except (RuntimeError, TimeoutError) as exc:
                print(f"genserve: {spec.name}: {exc}", file=sys.stderr)
                return 1
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        url = f"http://{shown}:{base_port}"
        mode = (
            "authentication ON: send Authorization: Bearer <key>"
            if auth
            else "authentication OFF (local development; metrics and docs from this machine only)"
        )
        print(f"\ngenserve is up on the demo models, {mode}")
        print(f"  playground  {url}/")
        print(f"  REST        {url}/v1   (docs {url}/docs)")
        print(f"  OIP v2      {url}/v2   gRPC {shown}:{base_port + GRPC_OFFSET}")
        print(f"  metrics     {url}/metrics")
        budgets = [f"{s.name} {cpus.format_list(s.cpus)}" for s, _p in procs if s.cpus]
        if budgets:
            print(f"  CPUs        {', '.join(budgets)} (--cpus all: no budget)")
        print("Ctrl-C stops everything.", flush=True)
        while all(p.poll() is None for _spec, p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all()
