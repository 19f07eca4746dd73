"""``genserve bench translation``: genserve's ONNX Runtime path against transformers and
CTranslate2 on one random-weight MarianMT of opus-mt-en-de dimensions.

genserve in float32 and in int8 (``export.quantize_graphs``, what ``models export
--precision int8`` does), transformers in float32, CTranslate2 in int8 and float32: each
decodes greedily and with 4 beams, forced to the same output length (end-of-sequence is
suppressed), with the same thread count, in turns in one process (``side_by_side``: five
rounds, the median of each; a ratio is the median of the rounds' ratios, with its range),
on the same random source ids. Tokens per second = batch * output length / seconds.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from genserve.timing import side_by_side

OPUS_MT_EN_DE = {
    "vocab_size": 58101,
    "d_model": 512,
    "layers": 6,
    "heads": 8,
    "ffn": 2048,
}
SOURCE_LEN = 24
OUTPUT_LEN = 32


def _build_random_marian(folder: Path) -> Any:
    """A random-weight MarianMTModel saved as a Hugging Face folder CTranslate2 can read."""
    import torch

    from genserve.config import PROJECT_ROOT
    from genserve.translation.train import build_model

    d = OPUS_MT_EN_DE
    torch.manual_seed(0)
    model = build_model(d, pad_id=d["vocab_size"] - 1, eos_id=0).eval()
    model.save_pretrained(folder, safe_serialization=True)
    # CTranslate2's converter reads the vocabulary through MarianTokenizer.
    names = [f"▁w{i}" for i in range(d["vocab_size"])]
    names[0], names[1], names[-1] = "</s>", "<unk>", "<pad>"  # Marian's layout
    (folder / "vocab.json").write_text(json.dumps({n: i for i, n in enumerate(names)}))
    demo = PROJECT_ROOT / "models" / "translation"
    for name in ("source.spm", "target.spm"):
        (folder / name).write_bytes((demo / name).read_bytes())
    return model


def _fixed_length(config: dict[str, Any], beams: int) -> Any:
    """The search that writes exactly ``OUTPUT_LEN`` tokens (end-of-sequence banned)."""
    from genserve.translation.search import SearchConfig

    eos = config["eos_token_id"]
    return SearchConfig(
        eos_id=eos,
        start_id=config["decoder_start_token_id"],
        banned_ids=(eos, config["pad_token_id"]),
        forced_eos=False,
        num_beams=beams,
        max_new_tokens=OUTPUT_LEN,
    )


ENGINES = (
    "genserve int8",
    "genserve fp32",
    "transformers fp32",
    "ctranslate2 int8",
    "ctranslate2 fp32",
)


def bench(
    threads: int,
    seconds: float,
    batches: tuple[int, ...] = (1, 32),
    beams: tuple[int, ...] = (1, 4),
) -> list[dict[str, Any]]:
    import shutil

    import ctranslate2
    import torch
    from tqdm import tqdm

    from genserve.config import RuntimeSettings
    from genserve.runtime import OnnxSession
    from genserve.translation.export import export_graphs, generation_defaults, quantize_graphs
    from genserve.translation.files import DECODER_FILE, ENCODER_FILE
    from genserve.translation.search import Hypothesis, SearchConfig
    from genserve.translation.translator import Options, Seq2Seq

    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir, onnx_dir, ct2_dir = Path(tmp) / "hf", Path(tmp) / "onnx", Path(tmp) / "ct2"
        model = _build_random_marian(hf_dir)
        export_graphs(model, onnx_dir, tolerance=1e-3)
        int8_dir = Path(tmp) / "onnx-int8"
        shutil.copytree(onnx_dir, int8_dir)
        quantize_graphs(int8_dir)
        settings = RuntimeSettings(intra_op_threads=threads)
        config = generation_defaults(hf_dir, model.config)
        ours = {
            precision: Seq2Seq(
                OnnxSession(folder / ENCODER_FILE, settings),
                OnnxSession(folder / DECODER_FILE, settings),
                config,
            )
            for precision, folder in (("fp32", onnx_dir), ("int8", int8_dir))
        }
        ctranslate2.converters.TransformersConverter(str(hf_dir)).convert(str(ct2_dir))
        ct2 = {
            compute: ctranslate2.Translator(
                str(ct2_dir),
                device="cpu",
                compute_type=compute,
                inter_threads=1,
                intra_threads=threads,
            )
            for compute in ("int8", "float32")
        }
        vocab = json.loads((hf_dir / "vocab.json").read_text())
        pieces = {i: p for p, i in vocab.items()}
        eos = config["eos_token_id"]
        rng = np.random.default_rng(0)
        cases = [(b, k) for k in beams for b in batches]
        for batch, k in tqdm(cases, desc="bench translation", unit="case"):
            src = rng.integers(2, OPUS_MT_EN_DE["vocab_size"] - 1, size=(batch, SOURCE_LEN))
            src[:, -1] = eos
            id_rows = src.tolist()
            tokens = [[pieces[i] for i in r] for r in id_rows]
            total = batch * OUTPUT_LEN
            fixed = _fixed_length(config, k)

            def run_ours(
                seq: Seq2Seq, id_rows: list[list[int]] = id_rows, fixed: SearchConfig = fixed
            ) -> list[Hypothesis]:
                return seq.generate(id_rows, Options(), fixed)

            def run_hf(src: np.ndarray = src, k: int = k) -> object:
                with torch.inference_mode():
                    return model.generate(
                        input_ids=torch.from_numpy(src),
                        attention_mask=torch.ones_like(torch.from_numpy(src)),
                        num_beams=k,
                        do_sample=False,
                        min_new_tokens=OUTPUT_LEN,
                        max_new_tokens=OUTPUT_LEN,
                    )

            def run_ct2(translator: Any, tokens: list[list[str]] = tokens, k: int = k) -> object:
                return translator.translate_batch(
                    tokens,
                    beam_size=k,
                    min_decoding_length=OUTPUT_LEN,
                    max_decoding_length=OUTPUT_LEN,
                )

            for precision, seq in ours.items():
                lengths = {len(h.tokens) for h in run_ours(seq)}
                assert lengths == {OUTPUT_LEN}, f"genserve {precision}: lengths {lengths}"
            runs: dict[str, Callable[[], object]] = {
                "genserve int8": lambda: run_ours(ours["int8"]),
                "genserve fp32": lambda: run_ours(ours["fp32"]),
                "transformers fp32": run_hf,
                "ctranslate2 int8": lambda: run_ct2(ct2["int8"]),
                "ctranslate2 fp32": lambda: run_ct2(ct2["float32"]),
            }
            measured = side_by_side(runs, total, seconds)
            row: dict[str, Any] = {"batch": batch, "beams": k}
            row.update({name: measured.rate(name) for name in runs})
            row["ratios"] = {name: measured.ratio("genserve int8", name) for name in runs}
            rows.append(row)
    return rows


def main(threads: int, seconds: float, startup: bool = True) -> int:
    rows = bench(threads, seconds)
    d = OPUS_MT_EN_DE
    print(
        f"\nMarianMT, random weights, opus-mt-en-de dimensions (d_model {d['d_model']}, "
        f"{d['layers']}+{d['layers']} layers, {d['heads']} heads, FFN {d['ffn']}, vocabulary "
        f"{d['vocab_size']}), {SOURCE_LEN} source -> {OUTPUT_LEN} output tokens, "
        f"{threads} threads. Output tokens per second (higher is better), each the median "
        "of five rounds in turns; ratios are genserve int8 over each other system, the "
        "median of the rounds' ratios (lowest-highest round)."
    )
    print(
        "| beams | batch | "
        + " | ".join(ENGINES)
        + " | int8 vs "
        + " | int8 vs ".join(ENGINES[1:])
        + " |"
    )
    print("|---:" * (2 + 2 * len(ENGINES) - 1) + "|")
    for r in rows:
        rates = " | ".join(f"{r[name]:.1f}" for name in ENGINES)
        ratios = " | ".join(
            "{:.2f}x ({:.2f}-{:.2f})".format(*r["ratios"][name]) for name in ENGINES[1:]
        )
        print(f"| {r['beams']} | {r['batch']} | {rates} | {ratios} |")
    return 0


# -- batching by decoder step against batching by call, at opus-mt size ------------------

MIX_EIGHT = 0.25  # the share of eight-text requests; the rest are one text


def batching(rates: list[float], seconds: float, threads: int = 1) -> list[dict[str, Any]]:
    """The translation service's two batchers at opus-mt size, in process: Poisson arrivals
    at each rate (requests/s) of one-text (and a quarter eight-text) greedy requests of 24
    source tokens, each decoding exactly ``OUTPUT_LEN`` tokens, into the ``MicroBatcher``
    as the service builds it: batch calls with cheap work overtaking (``max_calls`` 3), and
    iteration-level (``iterative``). The same arrivals for both, int8, ``threads`` threads
    (1: the service's one-CPU budget). Latency percentiles per request size, and each
    size's latency alone."""
    import asyncio
    import time

    from tqdm import tqdm

    from genserve.batching import MicroBatcher
    from genserve.config import RuntimeSettings
    from genserve.runtime import OnnxSession
    from genserve.translation.export import export_graphs, generation_defaults, quantize_graphs
    from genserve.translation.files import DECODER_FILE, ENCODER_FILE
    from genserve.translation.search import Joiners, decode, search
    from genserve.translation.translator import Seq2Seq

    with tempfile.TemporaryDirectory() as tmp:
        hf_dir, onnx_dir = Path(tmp) / "hf", Path(tmp) / "onnx"
        model = _build_random_marian(hf_dir)
        export_graphs(model, onnx_dir, tolerance=1e-3)
        quantize_graphs(onnx_dir)
        settings = RuntimeSettings(intra_op_threads=threads)
        seq = Seq2Seq(
            OnnxSession(onnx_dir / ENCODER_FILE, settings),
            OnnxSession(onnx_dir / DECODER_FILE, settings),
            generation_defaults(hf_dir, model.config),
        )
    c = seq.config
    eos = c["eos_token_id"]
    cfg = _fixed_length(c, 1)
    rng = np.random.default_rng(0)

    def sources(n: int) -> list[list[int]]:
        src = rng.integers(2, OPUS_MT_EN_DE["vocab_size"] - 1, size=(n, SOURCE_LEN))
        src[:, -1] = eos
        return src.tolist()

    def run_batch(rows: list[list[int]], _key: object) -> list[Any]:
        return search(seq.step, seq.encode(rows), cfg)

    def run_iterative(feed: Any, _key: object) -> None:
        open_: dict[int, list[Any]] = {}

        def join() -> Joiners | None:
            taken = feed.take(feed.max_rows - feed.rows)
            ids: list[Any] = [(t, j) for t, items, _ in taken for j in range(len(items))]
            rows = [r for _, items, _ in taken for r in items]
            open_.update((t, [None] * len(items)) for t, items, _ in taken)
            return Joiners(seq.encode(rows), ids, [cfg] * len(rows)) if rows else None

        def done(row: Any, hyp: Any) -> None:
            ticket, j = row
            open_[ticket][j] = hyp
            if all(h is not None for h in open_[ticket]):
                feed.finish(ticket, open_.pop(ticket))

        decode(seq.step, seq.empty(), join, done)

    alone = {}
    for n in (1, 8):
        rows = sources(n)
        run_batch(rows, None)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            run_batch(rows, None)
            times.append(time.perf_counter() - started)
        alone[n] = float(np.median(times))

    async def arm(
        iterative: bool, arrivals: list[tuple[float, list[list[int]]]]
    ) -> dict[int, list[float]]:
        run = run_iterative if iterative else run_batch
        b = MicroBatcher(
            run,
            max_batch_size=64,
            max_latency_ms=0,
            max_queue=100_000,
            iterative=iterative,
            max_calls=3,
        )
        latency: dict[int, list[float]] = {1: [], 8: []}
        start = time.perf_counter()

        async def one(at: float, rows: list[list[int]]) -> None:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            sent = time.perf_counter()
            await b.submit(rows, key=None)
            latency[len(rows)].append(time.perf_counter() - sent)

        await asyncio.gather(*(one(at, rows) for at, rows in arrivals))
        b.close()
        return latency

    out = []
    arms = [(rate, iterative) for rate in rates for iterative in (False, True)]
    arrivals: dict[float, list[tuple[float, list[list[int]]]]] = {}
    for rate, iterative in tqdm(arms, desc="bench translation batching", unit="run"):
        if rate not in arrivals:
            t, arrivals[rate] = 0.0, []
            while t < seconds:
                t += float(rng.exponential(1 / rate))
                arrivals[rate].append((t, sources(8 if rng.random() < MIX_EIGHT else 1)))
        latency = asyncio.run(arm(iterative, arrivals[rate]))
        sizes: dict[int, dict[str, float]] = {}
        for n, values in latency.items():
            ms = np.array(values) * 1000
            sizes[n] = {
                "n": len(ms),
                "p50": float(np.percentile(ms, 50)),
                "p95": float(np.percentile(ms, 95)),
                "alone": alone[n] * 1000,
            }
        out.append({"rate": rate, "iterative": iterative, "sizes": sizes})
    return out


def main_batching(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m genserve.translation.bench", description=batching.__doc__
    )
    p.add_argument("--rates", type=float, nargs="+", default=[2.0, 3.0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    rows = batching(args.rates, args.seconds, args.threads)
    print(
        f"\nopus-mt size, int8, {args.threads} thread(s): greedy requests of 1 text "
        f"({1 - MIX_EIGHT:.0%}) and 8 texts, {OUTPUT_LEN} output tokens each; latency in ms, "
        "p50 / p95 (alone: the request by itself)"
    )
    print("| requests/s | batcher | 1 text p50 / p95 | 8 texts p50 / p95 |")
    print("|---:|---|---:|---:|")
    for r in rows:
        name = "by decoder step" if r["iterative"] else "by call, 3 calls"
        cells = " | ".join(
            "{p50:.0f} / {p95:.0f} (n {n:.0f}, alone {alone:.0f})".format(**r["sizes"][n])
            for n in (1, 8)
        )
        print(f"| {r['rate']:g} | {name} | {cells} |")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main_batching(sys.argv[1:]))
