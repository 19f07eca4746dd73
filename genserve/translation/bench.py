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
            fixed = SearchConfig(
                eos_id=eos,
                start_id=config["decoder_start_token_id"],
                banned_ids=(eos, config["pad_token_id"]),
                forced_eos=False,
                num_beams=k,
                max_new_tokens=OUTPUT_LEN,
            )

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
