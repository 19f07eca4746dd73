"""``genserve bench gan``: ONNX Runtime against PyTorch eager on the same weights.

Both run in this process with the same thread count, in turns for each batch size
(``genserve.timing.side_by_side``), and the table reports samples per second and their ratio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genserve.config import PROJECT_ROOT, ModelSettings, RuntimeSettings
from genserve.timing import side_by_side


def bench(
    weights_dir: Path, model_dir: Path, *, threads: int, seconds: float, batches: tuple[int, ...]
) -> list[dict[str, Any]]:
    import torch
    from tqdm import tqdm

    from genserve.gan.export import load_generator
    from genserve.gan.sampler import GanSampler

    torch.set_num_threads(threads)
    g, _ = load_generator(weights_dir)
    sampler = GanSampler(model_dir, RuntimeSettings(intra_op_threads=threads))
    rows = []
    for batch in tqdm(batches, desc="bench gan", unit="batch size"):
        r = sampler.sample_rows(batch, seed=0, digit=None, truncation=1.0)
        zt, yt = torch.from_numpy(r.z), torch.from_numpy(r.class_weights)

        def eager(zt: torch.Tensor = zt, yt: torch.Tensor = yt) -> object:
            with torch.inference_mode():
                return g(zt, yt)

        feeds = r.feeds()

        def ort(feeds: dict[str, np.ndarray] = feeds) -> object:
            return sampler.generate(feeds)

        measured = side_by_side({"ort": ort, "torch": eager}, batch, seconds)
        ratio, lowest, highest = measured.ratio("ort", "torch")
        rows.append(
            {
                "batch": batch,
                "onnxruntime_samples_per_s": measured.rate("ort"),
                "torch_eager_samples_per_s": measured.rate("torch"),
                "ratio": ratio,
                "ratio_range": [lowest, highest],
            }
        )
    return rows


def startup_seconds(timeout: float = 60.0) -> float:
    """Wall time from launching ``bentoml serve services.gan:GanService`` to /readyz 200."""
    from genserve.ops.launcher import free_port, spawn, stop, wait_ready

    port = free_port()
    proc = spawn("services.gan:GanService", "127.0.0.1", port, quiet=True)
    try:
        return wait_ready(f"http://127.0.0.1:{port}", proc, timeout)
    finally:
        stop(proc)


def main(threads: int, seconds: float, startup: bool = True) -> int:
    """The table for ``genserve bench gan``, and the service's start-to-ready time."""
    rows = bench(
        PROJECT_ROOT / "models" / "gan",
        ModelSettings().dir / "gan",
        threads=threads,
        seconds=seconds,
        batches=(1, 64),
    )
    print(f"\nGAN generator, {threads} threads, samples per second (higher is better)")
    print(
        f"{'batch':>5}  {'onnxruntime':>12}  {'torch eager':>12}  {'ratio':>6}  "
        "(the median of five rounds' ratios; lowest-highest)"
    )
    for r in rows:
        low, high = r["ratio_range"]
        print(
            f"{r['batch']:>5}  {r['onnxruntime_samples_per_s']:>12.1f}  "
            f"{r['torch_eager_samples_per_s']:>12.1f}  {r['ratio']:>5.2f}x  ({low:.2f}-{high:.2f})"
        )
    if startup:
        print(f"service start to ready: {startup_seconds():.2f} s (bentoml serve -> /readyz 200)")
    return 0
