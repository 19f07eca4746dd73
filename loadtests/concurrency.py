"""Throughput against concurrency, per model, measured with wrk (C, a few percent of one
core), so that the load generator takes little of the 2 cores it shares with what it
measures.

    python -m loadtests.concurrency [--seconds 10] [--url http://127.0.0.1:3000]

For each model kind's example request (genserve.kinds: the cheapest request of the kind;
translation: one sentence, greedy), through the gateway: requests/s and latency at
concurrency 1 and 32 and their ratio; direct to the service at concurrency 1 (median,
beside the service's own mean model call from its metrics); and the service's
throughput at concurrency 32 beside its trivial route's (``/livez``) on the same worker.
Without --url the stack is started here (auth off, rate limits raised, each service on
its core budget, as ``make up`` runs them) and stopped after.

    python -m loadtests.concurrency --fast-path-ab [--model translation]

compares a model service with its fast path (services/fastpath.py) and without it
(GENSERVE_SERVER_FAST_PATH=false), side by side in one run, direct to the service on one
CPU: requests/s at concurrency 1 and 32, two rounds each, in turn.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # python loadtests/concurrency.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genserve import kinds
from genserve.kinds import ModelKind

WRK = "/usr/bin/wrk"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


@dataclass(frozen=True)
class Run:
    rate: float  # requests per second
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and socket errors
    requests: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    url: str, body: dict | None, connections: int, seconds: float, headers: dict | None = None
) -> Run:
    """One wrk run: POST ``body`` as JSON (GET when None) on ``connections`` connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if body is not None:
            script.write('wrk.method = "POST"\n')
            script.write(f"wrk.body = {json.dumps(json.dumps(body))}\n")
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
        for name, value in (headers or {}).items():
            script.write(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n")
    cmd = [WRK, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script.name]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
    Path(script.name).unlink()
    text = out.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(g) for g in sock.groups()) if sock else 0
    return Run(rate, p50, p99, errors, total)


def alone(service: str, kind: ModelKind, seconds: float) -> tuple[Run, float]:
    """The kind's example request direct to its service at concurrency 1, and the mean
    model call (ms) of that run alone, from the service's own stage histogram (0 when the
    run made no call)."""
    from genserve.ops.gateway_bench import inference_totals

    assert kind.example is not None
    before = inference_totals(service)
    run = wrk(service + kind.example.path, kind.example.body, 1, seconds)
    after = inference_totals(service)
    return run, 1000 * (after[0] - before[0]) / max(1.0, after[1] - before[1])


def bench(kind: ModelKind, gateway: str, service: str | None, seconds: float) -> dict:
    assert kind.example is not None
    path, body = kind.example.path, kind.example.body
    row: dict = {"model": kind.name, "path": path}
    wrk(gateway + path, body, 4, 2)  # warm up connections, sessions and batch shapes
    for c in (1, 32):
        row[f"gateway c={c}"] = wrk(gateway + path, body, c, seconds)
    if service is not None:
        row["direct c=1"], row["model call ms"] = alone(service, kind, seconds)
        row["direct c=32"] = wrk(service + path, body, 32, seconds)
        row["livez c=32"] = wrk(service + "/livez", None, 32, seconds)
    return row


def fast_path_ab(chosen: list[ModelKind], seconds: float, rounds: int = 2) -> None:
    """Each kind's service with and without its fast path, in turn, on CPU 0."""
    from genserve.ops.launcher import free_port, spawn, stop, wait_ready

    print("\nFast path against FastAPI (wrk direct to the service, pinned to CPU 0)")
    print(f"{'model':<12} {'round':>5} {'fast path':>9} {'c=1 req/s':>10} {'c=32 req/s':>11}")
    for kind in chosen:
        assert kind.example is not None
        path, body = kind.example.path, kind.example.body
        rates: dict[str, list[float]] = {"true": [], "false": []}
        for n in range(rounds):
            for fast in ("true", "false"):
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                env = {"GENSERVE_SERVER_FAST_PATH": fast}
                proc = spawn(kind.service, "127.0.0.1", port, env, quiet=True, cpus=[0])
                try:
                    wait_ready(url, proc, 120)
                    wrk(url + path, body, 4, 2)  # warm up
                    one, many = (
                        wrk(url + path, body, 1, seconds),
                        wrk(url + path, body, 32, seconds),
                    )
                finally:
                    stop(proc)
                rates[fast].append(many.rate)
                print(
                    f"{kind.name:<12} {n + 1:>5} {'on' if fast == 'true' else 'off':>9}"
                    f" {one.rate:>10.1f} {many.rate:>11.1f}",
                    flush=True,
                )
        on, off = sum(rates["true"]), sum(rates["false"])
        print(f"{kind.name:<12} c=32 with the fast path / without: {on / off:.2f}x")


def report(rows: list[dict]) -> None:
    print("\nThroughput against concurrency (wrk, one thread; each model's example request)")
    head = f"{'model':<12} {'c=1 req/s':>10} {'c=32 req/s':>11} {'ratio':>6}"
    head += f" {'c=1 p50':>8} {'c=32 p50':>9} {'c=32 p99':>9} {'errors':>6}"
    print(head)
    for r in rows:
        one, many = r["gateway c=1"], r["gateway c=32"]
        print(
            f"{r['model']:<12} {one.rate:>10.1f} {many.rate:>11.1f} {many.rate / one.rate:>5.2f}x"
            f" {one.p50_ms:>8.1f} {many.p50_ms:>9.1f} {many.p99_ms:>9.1f}"
            f" {one.errors + many.errors:>6}"
        )
    direct = [r for r in rows if "direct c=1" in r]
    if direct:
        print("\nDirect to the service (no gateway)")
        print(
            f"{'model':<12} {'c=1 p50 ms':>10} {'model call ms':>14} {'p50 - call':>11}"
            f" {'c=32 req/s':>11} {'/livez c=32':>12} {'ratio':>6}"
        )
        for r in direct:
            d1, d32, live = r["direct c=1"], r["direct c=32"], r["livez c=32"]
            call = r["model call ms"]
            print(
                f"{r['model']:<12} {d1.p50_ms:>10.2f} {call:>14.2f} {d1.p50_ms - call:>+11.2f}"
                f" {d32.rate:>11.1f} {live.rate:>12.1f} {d32.rate / live.rate:>5.2f}x"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.concurrency", description=__doc__)
    p.add_argument("--url", help="a running gateway (auth off); default: start the stack")
    p.add_argument("--seconds", type=float, default=10.0, help="per wrk run")
    p.add_argument("--model", action="append", help="only these kinds (repeatable)")
    p.add_argument(
        "--cpus", choices=("auto", "all"), default="auto", help="the services' core budget"
    )
    p.add_argument(
        "--fast-path-ab", action="store_true", help="each service with and without its fast path"
    )
    args = p.parse_args(argv)
    chosen = [k for k in kinds.kinds() if k.example and (not args.model or k.name in args.model)]
    if args.fast_path_ab:
        fast_path_ab(chosen, args.seconds)
        return 0
    if args.url:
        rows = [bench(k, args.url.rstrip("/"), None, args.seconds) for k in chosen]
    else:
        from loadtests.run import stack

        logs = Path("build/loadtests/concurrency")
        with stack(logs, budget=args.cpus == "auto") as (gateway, _grpc):
            services = _service_urls(logs)
            rows = [bench(k, gateway, services.get(k.name), args.seconds) for k in chosen]
    report(rows)
    return 0


def _service_urls(logs: Path) -> dict[str, str]:
    """The services' URLs, from the gateway's start-up log line."""
    text = (logs / "gateway.log").read_text(errors="replace")
    return dict(re.findall(r"(\w+)=(http://127\.0\.0\.1:\d+)", text))


if __name__ == "__main__":
    sys.exit(main())
