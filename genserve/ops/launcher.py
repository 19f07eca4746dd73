"""``genserve serve``: the whole graph on one machine (``make up``), each service its own
process: every model kind's service on a loopback port, and the gateway in front of them.

Ports from ``--port-base`` B: gateway HTTP B, gateway gRPC B+1, each model kind's service
B + its port offset (genserve.kinds: 10, 11, 12, ...). Model services always bind
loopback: callers use the gateway. The
launcher waits for every /readyz, prints the URLs and the authentication mode, restarts a
service that exits (``Supervisor``) and stops everything, in order, when interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

import httpx
import prometheus_client
import psutil

from genserve import cpus, kinds
from genserve.config import PROJECT_ROOT
from genserve.metrics import SERVICE_RESTARTS

GRPC_OFFSET = 1
SUPERVISOR_OFFSET = 2  # genserve serve's own metrics (restarts)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    target: str
    offset: int  # port = base port + offset
    env: dict[str, str] = field(default_factory=dict)
    cpus: tuple[int, ...] | None = None  # its core budget (CPU affinity); None = unpinned
    ready_path: str = "/readyz"  # answers 200 once the service is ready to serve


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
        # BENTOML_DO_NOT_TRACK: no usage report (its DNS lookup can hold start and stop).
        env={
            **os.environ,
            "BENTOML_HOME": str(home),
            "BENTOML_DO_NOT_TRACK": "True",
            **(env or {}),
        },
        stdout=out,
        stderr=subprocess.STDOUT if log is not None else out,
        start_new_session=True,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0, path: str = "/readyz"
) -> float:
    """Seconds until ``url`` + ``path`` answers 200; raises if the process exits or time
    runs out."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the service exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def free_port() -> int:
    """A loopback port nobody listens on now (for servers started by tests and benches)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def family(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """Every process the server has started (BentoML's workers run in sessions of their
    own: a signal to the server's group does not reach them)."""
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return []


def stop(
    proc: subprocess.Popen[bytes],
    timeout: float = 30.0,
    known: Sequence[psutil.Process] = (),
) -> None:
    """SIGTERM to the server's group; after ``timeout``, SIGKILL to what is left of it and
    of every process it had started (and of ``known``, its family as last seen), so that
    no worker outlives it as an orphan."""
    members = {p.pid: p for p in (*known, *family(proc))}
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _gone, alive = psutil.wait_procs(members.values(), max(0.1, deadline - time.monotonic()))
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def gateway_spec(base_port: int, auth: bool) -> ServiceSpec:
    env = {
        f"GENSERVE_GATEWAY_{s.name.upper()}_URL": f"http://127.0.0.1:{base_port + s.offset}"
        for s in model_services()
    }
    env["GENSERVE_GATEWAY_GRPC_PORT"] = str(base_port + GRPC_OFFSET)
    env["GENSERVE_GATEWAY_AUTH"] = "true" if auth else "false"
    # Ready once the gateway itself has seen every model service ready: "genserve is up"
    # then means a request through the front door is served, not refused for a stale probe.
    return ServiceSpec("gateway", "services.gateway:Gateway", 0, env, ready_path="/v2/health/ready")


class Supervisor:
    """Keeps the services of ``genserve serve`` running.

    A service that exits is started again after a backoff (1 s, doubling up to 30 s; back
    to 1 s once it has stayed up for a minute), while the others keep serving: the
    gateway's health probe answers 503 for that model meanwhile. Each restart counts in
    ``genserve_service_restarts_total{service}`` (served on the supervisor's own metrics
    port). ``stop`` takes the gateway down first, so nothing new comes in, then every
    model service together, each within its grace period.
    """

    MIN_BACKOFF_S, MAX_BACKOFF_S, STABLE_S = 1.0, 30.0, 60.0

    def __init__(self, specs: list[ServiceSpec], host: str, base_port: int) -> None:
        self.specs = specs
        self.host, self.base_port = host, base_port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.backoff = {s.name: self.MIN_BACKOFF_S for s in specs}
        self.due: dict[str, float] = {}  # name -> when to start it again
        self.families: dict[str, list[psutil.Process]] = {}  # as last seen

    def start(self, spec: ServiceSpec) -> None:
        bind = self.host if spec.name == "gateway" else "127.0.0.1"
        env = dict(spec.env)
        if spec.name == "gateway":
            env["GENSERVE_GATEWAY_GRPC_HOST"] = self.host
        port = self.base_port + spec.offset
        self.procs[spec.name] = spawn(spec.target, bind, port, env, cpus=spec.cpus)
        self.started[spec.name] = time.monotonic()

    def start_all(self) -> None:
        for spec in self.specs:
            self.start(spec)

    def url(self, spec: ServiceSpec) -> str:
        return f"http://127.0.0.1:{self.base_port + spec.offset}"

    def check(self, now: float | None = None) -> None:
        """Restart what has exited, once its backoff has passed."""
        now = time.monotonic() if now is None else now
        for spec in self.specs:
            proc = self.procs[spec.name]
            if spec.name in self.due:
                if now >= self.due[spec.name]:
                    del self.due[spec.name]
                    SERVICE_RESTARTS.labels(spec.name).inc()
                    self.start(spec)
                continue
            if proc.poll() is None:
                if now - self.started[spec.name] > self.STABLE_S:
                    self.backoff[spec.name] = self.MIN_BACKOFF_S
                if not self.families.get(spec.name):
                    self.families[spec.name] = family(proc)
                continue
            # What is left of it (a worker whose server was killed) goes too: it would
            # hold the port the restart needs.
            stop(proc, timeout=0.1, known=self.families.pop(spec.name, []))
            wait = self.backoff[spec.name]
            self.backoff[spec.name] = min(self.MAX_BACKOFF_S, wait * 2)
            self.due[spec.name] = now + wait
            print(
                f"genserve: {spec.name} exited ({proc.returncode}); restarting in {wait:g} s",
                file=sys.stderr,
                flush=True,
            )

    def stop(self, grace_s: float = 30.0) -> None:
        """The gateway first, then every model service at once, each given ``grace_s``."""
        gateway = [p for n, p in self.procs.items() if n == "gateway"]
        models = [p for n, p in self.procs.items() if n != "gateway"]
        for group in (gateway, models):
            for proc in group:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            for name, proc in list(self.procs.items()):
                if proc in group:
                    known = self.families.get(name, [])
                    stop(proc, timeout=max(0.1, deadline - time.monotonic()), known=known)


def serve(
    host: str = "127.0.0.1",
    base_port: int = kinds.DEFAULT_BASE_PORT,
    auth: bool = False,
    timeout: float = 120.0,
    budget: bool = True,
) -> int:
    """Start every service and the gateway, keep them running (restarting any that exits)
    until Ctrl-C or SIGTERM, then stop them in order. ``budget``: give each model service
    its share of the CPUs (genserve.cpus), or let them all use every one."""
    specs = [*model_services(budget), gateway_spec(base_port, auth)]
    supervisor = Supervisor(specs, host, base_port)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_args: stopping.set())
    supervisor.start_all()
    try:
        deadline = time.monotonic() + timeout
        for spec in specs:  # they start together: waiting in turn costs nothing
            try:
                proc = supervisor.procs[spec.name]
                wait_ready(supervisor.url(spec), proc, deadline - time.monotonic(), spec.ready_path)
            except (RuntimeError, TimeoutError) as exc:
                print(f"genserve: {spec.name}: {exc}", file=sys.stderr)
                return 1
        metrics_port = base_port + SUPERVISOR_OFFSET
        prometheus_client.start_http_server(metrics_port, addr="127.0.0.1")
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
        print(f"  metrics     {url}/metrics   (supervisor: http://127.0.0.1:{metrics_port}/)")
        budgets = [f"{s.name} {cpus.format_list(s.cpus)}" for s in specs if s.cpus]
        if budgets:
            print(f"  CPUs        {', '.join(budgets)} (--cpus all: no budget)")
        print("Ctrl-C stops everything.", flush=True)
        while not stopping.wait(0.25):
            supervisor.check()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        supervisor.stop()
