"""``genserve bench gateway``: the latency the gateway adds over calling a service directly.

One GAN service and one gateway in front of it (authentication on, so the key check is
counted) run as real ``bentoml serve`` processes. The same small request (one 32x32 PNG)
goes alternately straight to the service and through the gateway, one at a time over
kept-alive connections, and the table reports the medians and their difference. The
inference protocol routes are measured the same way with the unmodified tritonclient.
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _times_ms(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def bench(requests: int = 400) -> dict[str, float]:
    import json

    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http
    from tqdm import tqdm

    from genserve.launcher import spawn, stop, wait_ready
    from services.security import key_digest, new_key

    key = new_key()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.json"
        keys.write_text(json.dumps({"keys": [{"name": "bench", "sha256": key_digest(key)}]}))
        gan_port, gw_port, grpc_port = _port(), _port(), _port()
        gan_url, gw_url = f"http://127.0.0.1:{gan_port}", f"http://127.0.0.1:{gw_port}"
        # batching waits would hide the gateway's cost: answer each request at once
        no_wait = {"GENSERVE_GAN_MAX_LATENCY_MS": "0"}
        gan = spawn("services.gan:GanService", "127.0.0.1", gan_port, no_wait, quiet=True)
        env = {
            "GENSERVE_GATEWAY_GAN_URL": gan_url,
            "GENSERVE_GATEWAY_GRPC_PORT": str(grpc_port),
            "GENSERVE_GATEWAY_KEYS_FILE": str(keys),
            "GENSERVE_GATEWAY_RATE_PER_MINUTE": "10000000",
            "GENSERVE_GATEWAY_BURST": "100000",
        }
        gateway = spawn("services.gateway:Gateway", "127.0.0.1", gw_port, env, quiet=True)
        try:
            wait_ready(gan_url, gan)
            wait_ready(gw_url, gateway)
            body = {"seed": 1, "digit": 3, "format": "png"}
            headers = {"authorization": f"Bearer {key}"}
            direct = httpx.Client(base_url=gan_url)
            front = httpx.Client(base_url=gw_url, headers=headers)
            th = triton_http.InferenceServerClient(f"127.0.0.1:{gw_port}")
            tg = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            seeds_h = triton_http.InferInput("SEED", [1], "INT64")
            seeds_h.set_data_from_numpy(np.array([1], dtype=np.int64))
            seeds_g = triton_grpc.InferInput("SEED", [1], "INT64")
            seeds_g.set_data_from_numpy(np.array([1], dtype=np.int64))
            calls: dict[str, Callable[[], Any]] = {
                "direct": lambda: direct.post("/v1/samples", json=body).raise_for_status(),
                "gateway": lambda: front.post("/v1/samples", json=body).raise_for_status(),
                "v2 http": lambda: th.infer("gan", [seeds_h], headers=dict(headers)),
                "v2 grpc": lambda: tg.infer("gan", [seeds_g], headers=dict(headers)),
            }
            for fn in calls.values():  # warm up connections and code paths
                for _ in range(20):
                    fn()
            times: dict[str, list[float]] = {name: [] for name in calls}
            rounds = max(1, requests // 20)
            for _ in tqdm(range(rounds), desc="bench gateway", unit="round"):
                for name, fn in calls.items():  # interleaved, so drift hits all alike
                    times[name] += _times_ms(fn, 20)
        finally:
            stop(gateway)
            stop(gan)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return medians


def main(requests: int = 400) -> int:
    m = bench(requests)
    print("\nGateway overhead: GAN sample (one 32x32 PNG), sequential, kept-alive connections")
    print(f"{'path':<34} {'median ms':>10} {'added ms':>9}")
    rows = (
        ("direct to the GAN service (REST)", "direct"),
        ("through the gateway (REST, auth)", "gateway"),
        ("gateway OIP v2 HTTP, tritonclient", "v2 http"),
        ("gateway OIP v2 gRPC, tritonclient", "v2 grpc"),
    )
    for label, name in rows:
        print(f"{label:<34} {m[name]:>10.2f} {m[name] - m['direct']:>+9.2f}")
    print(f"gateway / direct: {m['gateway'] / m['direct']:.2f}x")
    return 0
