"""``genserve serve``: start every model service (``make up``), each its own process.

Each service is ``bentoml serve services.<name>:<Class>`` on its own loopback port. The
launcher waits until every one answers /readyz, prints the URLs, and stops them all when
it is interrupted or when one of them exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from genserve.config import PROJECT_ROOT


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    target: str
    offset: int  # port = base port + offset
    routes: str


SERVICES = (
    ServiceSpec("gan", "services.gan:GanService", 0, "/v1/samples /v1/interpolate /v1/model"),
    ServiceSpec(
        "translation", "services.translation:TranslationService", 1, "/v1/translate /v1/model"
    ),
    ServiceSpec("imagegen", "services.imagegen:ImagegenService", 2, "/v1/images /v1/jobs"),
)


def serve(host: str = "127.0.0.1", base_port: int = 3000, timeout: float = 120.0) -> int:
    """Start every service on ``base_port`` + 0, 1, 2...; returns when they stop."""
    procs: list[tuple[ServiceSpec, subprocess.Popen[bytes]]] = []
    port = {spec.name: base_port + spec.offset for spec in SERVICES}
    for spec in SERVICES:
        cmd = [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            spec.target,
            "--host",
            host,
            "--port",
            str(port[spec.name]),
        ]
        procs.append((spec, subprocess.Popen(cmd, cwd=PROJECT_ROOT, start_new_session=True)))

    def stop() -> None:
        for _spec, p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for _spec, p in procs:
            p.wait(timeout=30)

    def on_sigterm(*_args: object) -> None:
        stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        started = time.monotonic()
        waiting = {spec.name for spec, _p in procs}
        while waiting and time.monotonic() - started < timeout:
            for spec, p in procs:
                if p.poll() is not None:
                    print(f"genserve: {spec.name} exited with {p.returncode}", file=sys.stderr)
                    return 1
                if spec.name in waiting:
                    try:
                        url = f"http://{host}:{port[spec.name]}/readyz"
                        if httpx.get(url, timeout=1).status_code == 200:
                            waiting.discard(spec.name)
                    except httpx.HTTPError:
                        pass
            time.sleep(0.2)
        if waiting:
            print(f"genserve: not ready after {timeout}s: {sorted(waiting)}", file=sys.stderr)
            return 1
        print("\ngenserve is up (demo models, no authentication: local development)")
        for spec, _p in procs:
            base = f"http://{host}:{port[spec.name]}"
            print(
                f"  {spec.name:<12} {base}{spec.routes.split()[0]}  docs {base}/v1/docs  "
                f"metrics {base}/metrics"
            )
        print("Ctrl-C stops everything.", flush=True)
        while all(p.poll() is None for _spec, p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()
