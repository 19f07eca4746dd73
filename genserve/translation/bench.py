"""``genserve bench translation``: genserve's ONNX Runtime path against transformers and
CTranslate2 on one random-weight MarianMT of opus-mt-en-de dimensions.

All three decode greedily and are forced to the same output length (end-of-sequence
is suppressed), with the same thread count, one after another in one process, on the
same random source ids. Tokens per second = batch * output length / seconds.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from genserve.timing import throughput

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


def bench(threads: int, seconds: float, batches: tuple[int, ...] = (1, 32)) -> list[dict[str, Any]]:
    import ctranslate2
    import torch
    from tqdm import tqdm

    from genserve.config import RuntimeSettings
    from genserve.runtime import OnnxSession
    from genserve.translation.export import export_graphs, generation_defaults
    from genserve.translation.files import DECODER_FILE, ENCODER_FILE
    from genserve.translation.search import Hypothesis, SearchConfig
    from genserve.translation.translator import Options, Seq2Seq

    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir, onnx_dir, ct2_dir = Path(tmp) / "hf", Path(tmp) / "onnx", Path(tmp) / "ct2"
        model = _build_random_marian(hf_dir)
        export_graphs(model, onnx_dir, tolerance=1e-3)
        settings = RuntimeSettings(intra_op_threads=threads)
        config = generation_defaults(hf_dir, model.config)
        ours = Seq2Seq(
            OnnxSession(onnx_dir / ENCODER_FILE, settings),
            OnnxSession(onnx_dir / DECODER_FILE, settings),
            config,
        )
        ctranslate2.converters.TransformersConverter(str(hf_dir)).convert(str(ct2_dir))
        ct2 = ctranslate2.Translator(
            str(ct2_dir), device="cpu", inter_threads=1, intra_threads=threads
        )
        vocab = json.loads((hf_dir / "vocab.json").read_text())
        pieces = {i: p for p, i in vocab.items()}
        eos = config["eos_token_id"]
        fixed = SearchConfig(
            eos_id=eos,
            start_id=config["decoder_start_token_id"],
            banned_ids=(eos, config["pad_token_id"]),
            forced_eos=False,
            num_beams=1,
            max_new_tokens=OUTPUT_LEN,
        )
        rng = np.random.default_rng(0)
        for batch in tqdm(batches, desc="bench translation", unit="batch size"):
            src = rng.integers(2, OPUS_MT_EN_DE["vocab_size"] - 1, size=(batch, SOURCE_LEN))
            src[:, -1] = eos
            id_rows = src.tolist()
            tokens = [[pieces[i] for i in r] for r in id_rows]
            total = batch * OUTPUT_LEN

            def run_ours(id_rows: list[list[int]] = id_rows) -> list[Hypothesis]:
                return ours.generate(id_rows, Options(), fixed)

            def run_hf(src: np.ndarray = src) -> object:
                with torch.inference_mode():
                    return model.generate(
                        input_ids=torch.from_numpy(src),
                        attention_mask=torch.ones_like(torch.from_numpy(src)),
                        num_beams=1,
                        do_sample=False,
                        min_new_tokens=OUTPUT_LEN,
                        max_new_tokens=OUTPUT_LEN,
                    )

            def run_ct2(tokens: list[list[str]] = tokens) -> object:
                return ct2.translate_batch(
                    tokens,
                    beam_size=1,
                    min_decoding_length=OUTPUT_LEN,
                    max_decoding_length=OUTPUT_LEN,
                )

            lengths = {len(h.tokens) for h in run_ours()}
            assert lengths == {OUTPUT_LEN}, f"genserve produced lengths {lengths}"
            r_ours = throughput(run_ours, total, seconds)
            r_hf = throughput(run_hf, total, seconds)
            r_ct2 = throughput(run_ct2, total, seconds)
            rows.append(
                {
                    "batch": batch,
                    "genserve_onnxruntime": r_ours,
                    "transformers": r_hf,
                    "ctranslate2": r_ct2,
                }
            )
    return rows


def main(threads: int, seconds: float, startup: bool = True) -> int:
    rows = bench(threads, seconds)
    d = OPUS_MT_EN_DE
    print(
        f"\nMarianMT, random weights, opus-mt-en-de dimensions (d_model {d['d_model']}, "
        f"{d['layers']}+{d['layers']} layers, {d['heads']} heads, FFN {d['ffn']}, vocabulary "
        f"{d['vocab_size']}), float32, greedy, {SOURCE_LEN} source -> {OUTPUT_LEN} output "
        f"tokens, {threads} threads. Output tokens per second (higher is better)."
    )
    print(
        f"{'batch':>5}  {'genserve':>9}  {'transformers':>12}  {'ctranslate2':>11}  "
        f"{'vs transformers':>15}  {'vs ctranslate2':>14}"
    )
    for r in rows:
        print(
            f"{r['batch']:>5}  {r['genserve_onnxruntime']:>9.1f}  {r['transformers']:>12.1f}  "
            f"{r['ctranslate2']:>11.1f}  {r['genserve_onnxruntime'] / r['transformers']:>14.2f}x  "
            f"{r['genserve_onnxruntime'] / r['ctranslate2']:>13.2f}x"
        )
    return 0
