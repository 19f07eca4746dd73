"""``genserve bench gateway``: the latency the gateway adds over calling a service directly.

One model service (by default the first kind in genserve.kinds with an example request,
whose example is one 32x32 PNG) and one gateway in front of it (authentication on, so the key
check is counted) run as real ``bentoml serve`` processes. The kind's example request
goes alternately straight to the service and through the gateway, one at a time over
kept-alive connections, and the table reports the medians and their difference. The
inference protocol routes are measured the same way with the unmodified tritonclient.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from genserve import kinds
from genserve.errors import ConfigError
from genserve.kinds import Example, ModelKind
from genserve.protocol.tensors import DATATYPES


def _times_ms(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def bench(kind: ModelKind, requests: int = 400) -> dict[str, float]:
    import json

    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http
    from tqdm import tqdm

    from genserve.keys import key_digest, new_key
    from genserve.ops.launcher import free_port, spawn, stop, wait_ready

    example = kind.example
    if example is None:
        raise ConfigError(f"model kind {kind.name!r} has no example request to measure")
    key = new_key()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.json"
        keys.write_text(json.dumps({"keys": [{"name": "bench", "sha256": key_digest(key)}]}))
        model_port, gw_port, grpc_port = free_port(), free_port(), free_port()
        model_url, gw_url = f"http://127.0.0.1:{model_port}", f"http://127.0.0.1:{gw_port}"
        # A batching wait would hide the gateway's cost: none (the default), unless the
        # caller's environment asks for one (to measure what a wait costs).
        wait_env = f"GENSERVE_{kind.env_name}_MAX_LATENCY_MS"
        no_wait = {wait_env: os.environ.get(wait_env, "0")}
        model = spawn(kind.service, "127.0.0.1", model_port, no_wait, quiet=True)
        env = {
            f"GENSERVE_GATEWAY_{kind.env_name}_URL": model_url,
            "GENSERVE_GATEWAY_GRPC_PORT": str(grpc_port),
            "GENSERVE_GATEWAY_KEYS_FILE": str(keys),
            "GENSERVE_GATEWAY_RATE_PER_MINUTE": "10000000",
            "GENSERVE_GATEWAY_BURST": "100000",
        }
        gateway = spawn("services.gateway:Gateway", "127.0.0.1", gw_port, env, quiet=True)
        try:
            wait_ready(model_url, model)
            wait_ready(gw_url, gateway)
            path, body, params = example.path, example.body, example.parameters
            headers = {"authorization": f"Bearer {key}"}
            direct = httpx.Client(base_url=model_url)
            front = httpx.Client(base_url=gw_url, headers=headers)
            th = triton_http.InferenceServerClient(f"127.0.0.1:{gw_port}")
            tg = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            inputs_h = _inputs(triton_http, example)
            inputs_g = _inputs(triton_grpc, example)
            model_name = kind.name  # (not `name`: the loops below rebind that)
            calls: dict[str, Callable[[], Any]] = {
                "direct": lambda: direct.post(path, json=body).raise_for_status(),
                "gateway": lambda: front.post(path, json=body).raise_for_status(),
                "v2 http": lambda: th.infer(
                    model_name, inputs_h, parameters=params, headers=dict(headers)
                ),
                "v2 grpc": lambda: tg.infer(
                    model_name, inputs_g, parameters=params, headers=dict(headers)
                ),
            }
            for fn in calls.values():  # warm up connections and code paths
                for _ in range(20):
                    fn()
            times: dict[str, list[float]] = {name: [] for name in calls}
            rounds = max(1, requests // 20)
            for _ in tqdm(range(rounds), desc="bench gateway", unit="round"):
                for name, fn in calls.items():  # interleaved, so drift hits all alike
                    times[name] += _times_ms(fn, 20)
            model_ms = _mean_inference_ms(model_url)
        finally:
            stop(gateway)
            stop(model)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {**medians, "model": model_ms}


def _mean_inference_ms(url: str) -> float:
    """The mean model call of the service so far, from its own stage histogram."""
    total, count = inference_totals(url)
    return 1000 * total / count if count else float("nan")


def inference_totals(url: str) -> tuple[float, float]:
    """The service's model calls so far: (seconds in all, calls), from its histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "genserve_stage_duration_seconds":
            continue
        for sample in family.samples:
            if sample.labels.get("stage") != "inference":
                continue
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return total, count


def _inputs(client: Any, example: Example) -> list[Any]:
    """The example's inputs as tritonclient InferInputs (HTTP or gRPC module)."""
    out = []
    for name, datatype, values in example.inputs:
        dtype = np.object_ if datatype == "BYTES" else DATATYPES[datatype]
        data = np.array([v.encode() if isinstance(v, str) else v for v in values], dtype=dtype)
        tensor = client.InferInput(name, list(data.shape), datatype)
        tensor.set_data_from_numpy(data)
        out.append(tensor)
    return out


def main(requests: int = 400, kind: str | None = None) -> int:
    chosen = kinds.get(kind) if kind else next(k for k in kinds.kinds() if k.example)
    m = bench(chosen, requests)
    print(
        f"\nGateway overhead: {chosen.name} {chosen.example.path if chosen.example else ''} "
        "example request, sequential, kept-alive connections"
    )
    print(f"{'path':<34} {'median ms':>10} {'added ms':>9}")
    rows = (
        (f"direct to the {chosen.name} service (REST)", "direct"),
        ("through the gateway (REST, auth)", "gateway"),
        ("gateway OIP v2 HTTP, tritonclient", "v2 http"),
        ("gateway OIP v2 gRPC, tritonclient", "v2 grpc"),
    )
    for label, name in rows:
        print(f"{label:<34} {m[name]:>10.2f} {m[name] - m['direct']:>+9.2f}")
    print(f"gateway / direct: {m['gateway'] / m['direct']:.2f}x")
    print(
        f"model call (the service's inference histogram, mean): {m['model']:.2f} ms; "
        f"direct median - model call: {m['direct'] - m['model']:+.2f} ms"
    )
    return 0
