"""Run a load profile: against ``--url`` (and its gRPC address), or against a stack this
script starts on free loopback ports (auth off, rate limits raised) and stops afterwards.

    python -m loadtests --profile smoke                   # starts the stack itself
    python -m loadtests --profile ramp --url http://127.0.0.1:3000 --grpc 127.0.0.1:3001

Locust runs headless in a child process (it patches its process with gevent); its exit
code (0, or 1 on an SLO breach) is this script's. Reports: build/loadtests/<profile>/.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

if __package__ in (None, ""):  # python loadtests/run.py: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import config, processes

LOCUSTFILE = config.HERE / "locustfile.py"
STARTUP_TIMEOUT_S = 180.0
GRACE_S = 120.0  # beyond the profile's planned load: start-up, the last requests, reports


@contextmanager
def stack(logs: Path, budget: bool = True) -> Iterator[tuple[str, str]]:
    """Every model service and the gateway on free loopback ports (authentication off,
    rate limits raised so the limiter does not shape the load); yields (URL, gRPC address)
    once all are ready, and stops them all on the way out."""
    from genserve.ops.launcher import free_port, model_services, spawn, stop, wait_ready

    logs.mkdir(parents=True, exist_ok=True)
    procs: list[tuple[str, str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        name: str, target: str, port: int, env: dict[str, str], cpus: tuple[int, ...] | None = None
    ) -> str:
        log = (logs / f"{name}.log").open("wb")
        url = f"http://127.0.0.1:{port}"
        proc = spawn(target, "127.0.0.1", port, env, log=log, cpus=cpus)
        procs.append((name, url, proc, log))
        return url

    try:
        gateway_env = {
            "GENSERVE_GATEWAY_AUTH": "false",
            "GENSERVE_GATEWAY_RATE_PER_MINUTE": "10000000",
            "GENSERVE_GATEWAY_BURST": "100000",
            # one load generator is one caller: its own bound must not shape the load
            "GENSERVE_GATEWAY_MAX_IN_FLIGHT_PER_CALLER": "100000",
        }
        for spec in model_services(budget):  # each on its core budget, as make up runs them
            url = start(spec.name, spec.target, free_port(), spec.env, spec.cpus)
            gateway_env[f"GENSERVE_GATEWAY_{spec.name.upper()}_URL"] = url
        grpc_port = free_port()
        gateway_env["GENSERVE_GATEWAY_GRPC_PORT"] = str(grpc_port)
        gateway_env["GENSERVE_GATEWAY_GRPC_HOST"] = "127.0.0.1"
        gateway_url = start("gateway", "services.gateway:Gateway", free_port(), gateway_env)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for name, url, proc, _log in procs:
            print(f"loadtests: waiting for {name} at {url}", flush=True)
            try:
                wait_ready(url, proc, max(1.0, deadline - time.monotonic()))
            except (RuntimeError, TimeoutError) as exc:
                tail = (logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name}: {exc}\n{tail}") from None
        print(f"loadtests: stack ready, gateway {gateway_url}, gRPC 127.0.0.1:{grpc_port}")
        yield gateway_url, f"127.0.0.1:{grpc_port}"
    finally:
        for name, _url, proc, log in reversed(procs):
            stop(proc)
            log.close()
            print(f"loadtests: stopped {name}", flush=True)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        prog="python -m loadtests",
        description="genserve's Locust load tests (headless). Arguments after -- go to locust.",
    )
    p.add_argument("--profile", choices=config.PROFILES, default="smoke")
    p.add_argument("--url", help="the gateway (default: start the stack here, auth off)")
    p.add_argument("--grpc", help="the gateway's gRPC address (default: --url's port + 1)")
    p.add_argument("--family", choices=config.FAMILIES, help="stress: this family (gan)")
    p.add_argument("--users", type=int, help="peak users (the profile's default)")
    p.add_argument("--seconds", type=float, help="run length; ramp and stress: per step")
    p.add_argument("--wait", help="think time: between:MIN:MAX, pace:TASKS_PER_S or none")
    p.add_argument("--mix", type=Path, default=config.MIX_FILE, help="user and task weights")
    p.add_argument("--slo", type=Path, default=config.SLO_FILE, help="the SLOs")
    p.add_argument("--out", type=Path, help="reports (default build/loadtests/<profile>)")
    p.add_argument("--quiet", action="store_true", help="no stats while running, the summary")
    p.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow a --url/--grpc that is not this machine (your own, never someone else's)",
    )
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    return p.parse_args(argv), extra


def locust_command(
    args: argparse.Namespace, url: str, grpc: str, out: Path, extra: list[str]
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "--grpc-host",
        grpc,
        "--load-profile",
        args.profile,
        "--mix-file",
        str(args.mix),
        "--slo-file",
        str(args.slo),
        "--report-dir",
        str(out),
        "--html",
        str(out / "report.html"),
        "--csv",
        str(out / "locust"),
    ]
    for flag, value in (
        ("--family", args.family),
        ("--peak-users", args.users),
        ("--seconds", args.seconds),
        ("--wait", args.wait),
    ):
        if value:
            cmd += [flag, str(value)]
    if args.allow_non_loopback:
        cmd.append("--allow-non-loopback")
    if args.quiet:
        cmd.append("--only-summary")
    return cmd + extra


def run_locust(cmd: list[str], timeout: float) -> int:
    """Locust in its own session; stopped (SIGINT, then SIGKILL) past ``timeout``."""
    print("loadtests: " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=config.PROJECT_ROOT, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"loadtests: locust still running after {timeout:.0f}s, stopping it", flush=True)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return 124
    except KeyboardInterrupt:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        return proc.wait()


def main(argv: list[str] | None = None) -> int:
    args, extra = parse(argv)
    out = (args.out or config.REPORTS_DIR / args.profile).resolve()
    unit = config.mix_unit(config.load_mix(args.mix), args.family)
    stages = config.build_plan(args.profile, args.users, args.seconds, args.family, unit)
    timeout = config.plan_seconds(stages) + GRACE_S
    if args.url:
        grpc = args.grpc or f"{config.host_of(args.url)}:{_port(args.url) + 1}"
        why = config.refuse_remote([args.url, grpc], args.allow_non_loopback)
        if why:
            print(f"loadtests: {why}", file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
        return run_locust(locust_command(args, args.url, grpc, out, extra), timeout)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with stack(out / "stack") as (url, grpc):
            before, started = processes.cpu_seconds(), time.monotonic()
            code = run_locust(locust_command(args, url, grpc, out, extra), timeout)
            use = processes.cpu_use(before, processes.cpu_seconds(), time.monotonic() - started)
    except RuntimeError as exc:
        print(f"loadtests: the stack did not start: {exc}", file=sys.stderr)
        return 1
    (out / "cpu.json").write_text(json.dumps(use, indent=1) + "\n")
    parts = ", ".join(f"{name} {cpu}" for name, cpu in use.items())
    print(f"loadtests: CPU seconds per second over the run: {parts} (of {os.cpu_count()} CPUs)")
    print(f"loadtests: reports in {out}")
    return code


def _port(url: str) -> int:
    from urllib.parse import urlsplit

    split = urlsplit(url)
    return split.port or (443 if split.scheme == "https" else 80)


if __name__ == "__main__":
    sys.exit(main())
