"""``genserve models export translation FOLDER``: a Hugging Face Marian folder -> ONNX.

Two graphs, both written out explicitly from the Marian modules' weights so that the
interface is ours and stable across transformers versions:

``encoder.onnx``
    input_ids, attention_mask (B, S) int64 -> cross_keys, cross_values (L, B, H, S, Dh):
    the encoder output already projected into every decoder layer's cross-attention keys
    and values, computed once per request.
``decoder.onnx``
    one step with a self-attention KV cache: input_ids (B, 1), encoder_attention_mask
    (B, S), positions (B,), and per decoder layer i past_keys_i, past_values_i
    (B, H, T, Dh) and cross_keys_i, cross_values_i (B, H, S, Dh) (one tensor per layer:
    ONNX Runtime reads the caller's arrays in place, where a stacked input was split, a
    copy, every step). positions: how many tokens each row has had; its past is the
    cache's first ``positions`` columns, the rest padding (spare columns the caller keeps
    so that the cache is not copied every step, and rows that joined a running batch
    late, search.py, sit beside the others) -> log_probs (B, V: the next token's
    log-probabilities, log_softmax of the logits), new_keys, new_values
    (L, B, H, 1, Dh; this step's key and value of each row, which the caller writes at
    column positions[i]: the graph never copies the cache) and cross_attentions
    (L, B, H, S): the weights this step's query put on each source token, per layer and
    head.

Beside them: the tokenizer files, ``translation.json`` (decoding defaults) and, for a
demo model trained on genserve's generated corpus, ``source_words.json`` (the source
words seen in training; ``words.py``). The torch modules traced are in ``modules.py``.
The export fails (and leaves no ONNX files) unless ONNX Runtime matches PyTorch on
random inputs and on a real sentence.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import TensorSpec, load_manifest, write_manifest
from genserve.config import RuntimeSettings
from genserve.errors import ModelIntegrityError
from genserve.exporting import ParityCheck, display_path, quantize_int8
from genserve.runtime import OnnxSession
from genserve.translation import words
from genserve.translation.corpus import generate
from genserve.translation.files import (
    DECODER_FILE,
    ENCODER_FILE,
    SETTINGS_FILE,
    SOURCE_WORDS_FILE,
    TOKENIZER_FILES,
)
from genserve.translation.search import CACHE_CHUNK, CACHE_INPUTS, DecoderState

OPSET = 18


def training_vocabulary(recipe: dict[str, Any]) -> dict[str, Any]:
    """The ``source_words.json`` document of a model trained by ``genserve models train
    translation`` with ``recipe``: its corpus regenerated (seed, pairs), English side.
    Build code (the corpus generator); the service only reads the file (``words.py``)."""
    seed, pairs = int(recipe["seed"]), int(recipe["corpus_pairs"])
    corpus = generate(seed, n_train=pairs)
    return {
        "format": words.FORMAT,
        "corpus": words.CORPUS,
        "seed": seed,
        "pairs": pairs,
        "words": words.vocabulary(p.en for p in corpus.train),
    }


def load_marian(folder: Path) -> Any:
    """A MarianMTModel in float32, eager attention, from safetensors only (never pickle)."""
    import torch
    from transformers import MarianMTModel

    if not (folder / "model.safetensors").is_file():
        raise ModelIntegrityError(
            f"{folder} has no model.safetensors; genserve loads no pickle weights "
            "(pytorch_model.bin). Convert the checkpoint to safetensors first."
        )
    model = MarianMTModel.from_pretrained(
        str(folder), dtype=torch.float32, attn_implementation="eager", use_safetensors=True
    )
    return model.eval()


def generation_defaults(folder: Path, config: Any) -> dict[str, Any]:
    """What genserve needs from config.json and generation_config.json, in one file."""
    gen: dict[str, Any] = {}
    if (folder / "generation_config.json").is_file():
        gen = json.loads((folder / "generation_config.json").read_text())
    bad = [ids[0] for ids in gen.get("bad_words_ids") or [] if len(ids) == 1]
    return {
        "pad_token_id": config.pad_token_id,
        "eos_token_id": config.eos_token_id,
        "decoder_start_token_id": config.decoder_start_token_id,
        "forced_eos_token_id": gen.get("forced_eos_token_id", config.forced_eos_token_id),
        "banned_token_ids": sorted(set(bad)),
        "max_length": int(gen.get("max_length", 512)),
        "num_beams": int(gen.get("num_beams", 1)),
        "length_penalty": float(gen.get("length_penalty", 1.0)),
        "layers": config.decoder_layers,
        "heads": config.decoder_attention_heads,
        "head_dim": config.d_model // config.decoder_attention_heads,
        "vocab_size": config.vocab_size,
        "max_source_tokens": int(config.max_position_embeddings),
    }


def export_graphs(model: Any, out_dir: Path, *, tolerance: float = 1e-4) -> dict[str, Any]:
    """Write encoder.onnx and decoder.onnx for ``model`` into ``out_dir`` and check them
    against PyTorch; on a miss nothing is left behind. Returns the sessions and figures."""
    import torch

    from genserve.translation.modules import MarianDecoderStepExport, MarianEncoderExport

    enc, dec = MarianEncoderExport(model).eval(), MarianDecoderStepExport(model).eval()
    cfg = model.config
    layers, heads = cfg.decoder_layers, cfg.decoder_attention_heads
    head_dim = cfg.d_model // heads
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.iterdir():
        f.unlink()

    batch, src = torch.export.Dim("batch"), torch.export.Dim("source")
    past = torch.export.Dim("past", min=0)
    ids = torch.tensor([[5, 6, 7, 1], [8, 9, 1, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        torch.onnx.export(
            enc,
            (ids, mask),
            str(out_dir / ENCODER_FILE),
            input_names=["input_ids", "attention_mask"],
            output_names=["cross_keys", "cross_values"],
            dynamic_shapes={"input_ids": {0: batch, 1: src}, "attention_mask": {0: batch, 1: src}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
        )
        ck, cv = enc(ids, mask)
        pk = [torch.zeros(2, heads, 3, head_dim) for _ in range(layers)]
        positions = torch.tensor([3, 1])
        step_args = (
            torch.tensor([[5], [6]]),
            mask,
            positions,
            pk,
            [p.clone() for p in pk],
            list(ck),
            list(cv),
        )
        per_layer = {
            "past_keys": {0: batch, 2: past},
            "past_values": {0: batch, 2: past},
            "cross_keys": {0: batch, 2: src},
            "cross_values": {0: batch, 2: src},
        }
        torch.onnx.export(
            dec,
            step_args,
            str(out_dir / DECODER_FILE),
            input_names=[
                "input_ids",
                "encoder_attention_mask",
                "positions",
                *(f"{name}_{i}" for name in CACHE_INPUTS for i in range(layers)),
            ],
            output_names=["log_probs", "new_keys", "new_values", "cross_attentions"],
            dynamic_shapes={
                "input_ids": {0: batch},
                "encoder_attention_mask": {0: batch, 1: src},
                "positions": {0: batch},
                **{name: [dims] * layers for name, dims in per_layer.items()},
            },
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
        )
    settings = RuntimeSettings(providers="CPUExecutionProvider")
    try:
        enc_s = OnnxSession(out_dir / ENCODER_FILE, settings)
        dec_s = OnnxSession(out_dir / DECODER_FILE, settings)
        worst = _parity(model, enc, enc_s, dec_s, tolerance)
    except Exception:
        for f in out_dir.iterdir():
            f.unlink()
        raise
    return {"encoder": enc_s, "decoder": dec_s, "parity_max_abs": worst}


def quantize_graphs(folder: Path) -> dict[str, object]:
    """Both graphs of ``folder`` in int8 (``exporting.quantize_int8``); what the manifest
    records of it."""
    recorded: dict[str, object] = {}
    for name in (ENCODER_FILE, DECODER_FILE):
        recorded = quantize_int8(folder / name)  # the same method for both
    return recorded


def export(
    folder: Path, out_dir: Path, *, tolerance: float = 1e-4, precision: str = "fp32"
) -> dict[str, Any]:
    """Export a Marian folder, check it against PyTorch, write a verified model folder.

    ``precision="int8"``: the checked float32 graphs are then quantized
    (``exporting.quantize_int8``); the same code serves them. Its quality against float32
    is measured by the tests (tests/integration/test_translation_int8.py), not here."""
    import torch

    verified = (folder / "genserve.json").is_file()
    source_manifest = load_manifest(folder, kind="translation") if verified else None
    model = load_marian(folder)
    graphs = export_graphs(model, out_dir, tolerance=tolerance)
    enc_s, dec_s, worst = graphs["encoder"], graphs["decoder"], graphs["parity_max_abs"]
    quantization = quantize_graphs(out_dir) if precision == "int8" else None
    cfg = model.config
    for name in TOKENIZER_FILES:
        shutil.copy(folder / name, out_dir / name)
    defaults = generation_defaults(folder, cfg)
    (out_dir / SETTINGS_FILE).write_text(json.dumps(defaults, indent=2) + "\n")
    extra = []
    if source_manifest is not None and source_manifest.source.get("corpus") == words.CORPUS:
        # A demo model trained on the generated corpus: the words it saw, for the
        # service's ``unknown_words`` (a real checkpoint's training data is not known).
        words.write(out_dir / SOURCE_WORDS_FILE, training_vocabulary(source_manifest.recipe))
        extra.append(SOURCE_WORDS_FILE)
    specs_in = tuple(enc_s.inputs.values()) + tuple(dec_s.inputs.values())
    specs_out = tuple(enc_s.outputs.values()) + tuple(dec_s.outputs.values())
    write_manifest(
        out_dir,
        kind="translation",
        name=source_manifest.name if source_manifest else folder.name,
        files=[ENCODER_FILE, DECODER_FILE, *TOKENIZER_FILES, SETTINGS_FILE, *extra],
        inputs=tuple(
            _prefixed(s, "encoder" if i < len(enc_s.inputs) else "decoder")
            for i, s in enumerate(specs_in)
        ),
        outputs=tuple(
            _prefixed(s, "encoder" if i < len(enc_s.outputs) else "decoder")
            for i, s in enumerate(specs_out)
        ),
        config={"source_lang": "en", "target_lang": "fr", "precision": precision, **defaults},
        source={
            "format": "huggingface-marian",
            "folder": display_path(folder),
            "weights_sha256": source_manifest.files.get("model.safetensors")
            if source_manifest
            else None,
            "opset": OPSET,
            "torch": torch.__version__,
            "parity_max_abs": worst,  # of the float32 graphs, before any quantization
            **({"quantization": quantization} if quantization else {}),
        },
        recipe=source_manifest.recipe if source_manifest else {},
    )
    return {"parity_max_abs": worst, "precision": precision, "folder": str(out_dir)}


def _prefixed(spec: TensorSpec, graph: str) -> TensorSpec:
    return TensorSpec(f"{graph}/{spec.name}", spec.dtype, spec.shape)


def _parity(
    model: Any, enc: Any, enc_s: OnnxSession, dec_s: OnnxSession, tolerance: float
) -> float:
    """ONNX Runtime against the torch wrapper and against transformers' own model; the
    torch encoder wrapper against transformers' encoder. Raises ExportError beyond
    ``tolerance``, else returns the largest difference."""
    import torch

    parity = ParityCheck(tolerance)
    rng = np.random.default_rng(0)
    vocab = model.config.vocab_size
    ids = rng.integers(3, vocab, size=(3, 9))
    ids[:, -1] = 1
    ids[1, 6:] = 0
    ids[1, 5] = 1
    mask = (ids != 0).astype(np.int64)
    ck, cv = enc_s.run({"input_ids": ids, "attention_mask": mask}).values()
    with torch.no_grad():
        tk, tv = enc(torch.from_numpy(ids), torch.from_numpy(mask))
        hf_enc = model.model.encoder(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state
        layer0 = model.model.decoder.layers[0].encoder_attn
        hf_k0 = layer0.k_proj(hf_enc)
    parity.compare("encoder cross_keys", ck, tk.numpy())
    parity.compare("encoder cross_values", cv, tv.numpy())
    # Our encoder against transformers' (valid positions only).
    b, h, s, d = tk[0].shape
    ours_k0 = tk[0].transpose(1, 2).reshape(b, s, h * d).numpy()
    valid = mask.astype(bool)
    parity.compare(
        "layer-0 cross keys of the torch wrapper against transformers",
        ours_k0[valid],
        hf_k0.numpy()[valid],
    )

    def step(tokens: np.ndarray, state: DecoderState) -> dict[str, np.ndarray]:
        return dec_s.run(state.feeds(tokens))

    state = DecoderState.start(ck, cv, mask)
    tokens = np.zeros((3, 1), np.int64)
    steps, fed = [], []
    for _ in range(4):
        out = step(tokens, state)
        fed.append(tokens)
        steps.append(out["log_probs"])
        state.advance(out["new_keys"], out["new_values"])
        tokens = out["log_probs"].argmax(-1)[:, None]
    # A row with more padding columns (as after joining a running batch late beside
    # longer rows, search.py): row 2's first two steps again, its cache two chunks
    # wider, must give the same log-probabilities.
    late = DecoderState.start(ck[:, 2:3], cv[:, 2:3], mask[2:3])
    late.widen(late.past_keys.shape[3] + 2 * CACHE_CHUNK)
    for t in range(2):
        out = step(fed[t][2:3], late)
        parity.compare(
            f"decoder log-probabilities of a padded row at step {t}",
            out["log_probs"],
            steps[t][2:3],
        )
        late.advance(out["new_keys"], out["new_values"])
    # transformers, teacher-forced on the same tokens
    decoder_input = np.concatenate(
        [np.zeros((3, 1), np.int64)] + [s.argmax(-1)[:, None] for s in steps[:-1]], axis=1
    )
    with torch.no_grad():
        hf = (
            model(
                input_ids=torch.from_numpy(ids),
                attention_mask=torch.from_numpy(mask),
                decoder_input_ids=torch.from_numpy(decoder_input),
            )
            .logits.log_softmax(-1)
            .numpy()
        )
    for t, log_probs in enumerate(steps):
        parity.compare(
            f"decoder log-probabilities at step {t} against transformers", log_probs, hf[:, t]
        )
    return parity.check(on_failure="the ONNX files were removed")
