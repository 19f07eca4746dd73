"""``genserve models export translation FOLDER``: a Hugging Face Marian folder -> ONNX.

Two graphs, both written out explicitly from the Marian modules' weights so that the
interface is ours and stable across transformers versions:

``encoder.onnx``
    input_ids, attention_mask (B, S) int64 -> cross_keys, cross_values (L, B, H, S, Dh):
    the encoder output already projected into every decoder layer's cross-attention keys
    and values, computed once per request.
``decoder.onnx``
    one step with a self-attention KV cache: input_ids (B, 1), encoder_attention_mask
    (B, S), past_keys, past_values (L, B, H, T, Dh; T = 0 on the first step),
    cross_keys, cross_values -> logits (B, V), present_keys, present_values
    (L, B, H, T+1, Dh) and cross_attentions (L, B, H, S): the weights this step's query
    put on each source token, per layer and head.

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
from genserve.config import PROJECT_ROOT, RuntimeSettings
from genserve.errors import ExportError, ModelIntegrityError

OPSET = 18
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
TOKENIZER_FILES = ("source.spm", "target.spm", "vocab.json")
SETTINGS_FILE = "translation.json"


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


def _modules() -> Any:
    """The torch wrappers, defined lazily so that importing this module needs no torch."""
    import torch
    from torch import nn

    class Heads:
        def __init__(self, heads: int, dim: int) -> None:
            self.heads, self.dim = heads, dim

        def split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, Dh)
            b, t, _ = x.shape
            return x.view(b, t, self.heads, self.dim).transpose(1, 2)

        def merge(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, T, Dh) -> (B, T, D)
            b, _, t, _ = x.shape
            return x.transpose(1, 2).reshape(b, t, self.heads * self.dim)

    def attend(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.matmul(q, k.transpose(2, 3)) * scale
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        return torch.matmul(weights, v), weights

    def additive_mask(attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, S) 1/0 -> (B, 1, 1, S) 0 / most-negative, as transformers builds it."""
        m = attention_mask[:, None, None, :].to(torch.float32)
        return (1.0 - m) * torch.finfo(torch.float32).min

    class MarianEncoderExport(nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            cfg = model.config
            self.encoder = model.model.encoder
            self.cross = nn.ModuleList(layer.encoder_attn for layer in model.model.decoder.layers)
            self.heads = Heads(
                cfg.encoder_attention_heads, cfg.d_model // cfg.encoder_attention_heads
            )
            self.dec_heads = Heads(
                cfg.decoder_attention_heads, cfg.d_model // cfg.decoder_attention_heads
            )

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            enc = self.encoder
            h = enc.embed_tokens(input_ids) * enc.embed_scale
            positions = enc.embed_positions.weight[: input_ids.shape[1]]
            h = h + positions[None]
            mask = additive_mask(attention_mask)
            for layer in enc.layers:
                a = layer.self_attn
                out, _ = attend(
                    self.heads.split(a.q_proj(h)),
                    self.heads.split(a.k_proj(h)),
                    self.heads.split(a.v_proj(h)),
                    mask,
                    a.scaling,
                )
                h = layer.self_attn_layer_norm(h + a.out_proj(self.heads.merge(out)))
                ff = layer.fc2(layer.activation_fn(layer.fc1(h)))
                h = layer.final_layer_norm(h + ff)
            cross: list[Any] = list(self.cross)
            keys = torch.stack([self.dec_heads.split(c.k_proj(h)) for c in cross])
            values = torch.stack([self.dec_heads.split(c.v_proj(h)) for c in cross])
            return keys, values

    class MarianDecoderStepExport(nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            cfg = model.config
            self.decoder = model.model.decoder
            self.lm_head = model.lm_head
            self.register_buffer("final_logits_bias", model.final_logits_bias.clone())
            self.heads = Heads(
                cfg.decoder_attention_heads, cfg.d_model // cfg.decoder_attention_heads
            )

        def forward(
            self,
            input_ids: torch.Tensor,
            encoder_attention_mask: torch.Tensor,
            past_keys: torch.Tensor,
            past_values: torch.Tensor,
            cross_keys: torch.Tensor,
            cross_values: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            dec = self.decoder
            position = past_keys.shape[3]
            h = dec.embed_tokens(input_ids) * dec.embed_scale
            h = h + dec.embed_positions.weight[position : position + 1][None]
            cross_mask = additive_mask(encoder_attention_mask)
            new_keys, new_values, attentions = [], [], []
            for i, layer in enumerate(dec.layers):
                a = layer.self_attn
                k = torch.cat([past_keys[i], self.heads.split(a.k_proj(h))], dim=2)
                v = torch.cat([past_values[i], self.heads.split(a.v_proj(h))], dim=2)
                new_keys.append(k)
                new_values.append(v)
                out, _ = attend(self.heads.split(a.q_proj(h)), k, v, None, a.scaling)
                h = layer.self_attn_layer_norm(h + a.out_proj(self.heads.merge(out)))
                c = layer.encoder_attn
                out, weights = attend(
                    self.heads.split(c.q_proj(h)),
                    cross_keys[i],
                    cross_values[i],
                    cross_mask,
                    c.scaling,
                )
                attentions.append(weights[:, :, 0, :])
                h = layer.encoder_attn_layer_norm(h + c.out_proj(self.heads.merge(out)))
                ff = layer.fc2(layer.activation_fn(layer.fc1(h)))
                h = layer.final_layer_norm(h + ff)
            logits = self.lm_head(h[:, 0]) + self.final_logits_bias
            return logits, torch.stack(new_keys), torch.stack(new_values), torch.stack(attentions)

    return MarianEncoderExport, MarianDecoderStepExport


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

    from genserve.runtime import OnnxSession

    encoder_cls, decoder_cls = _modules()
    enc, dec = encoder_cls(model).eval(), decoder_cls(model).eval()
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
        pk = torch.zeros(layers, 2, heads, 3, head_dim)
        step_args = (torch.tensor([[5], [6]]), mask, pk, pk.clone(), ck, cv)
        torch.onnx.export(
            dec,
            step_args,
            str(out_dir / DECODER_FILE),
            input_names=[
                "input_ids",
                "encoder_attention_mask",
                "past_keys",
                "past_values",
                "cross_keys",
                "cross_values",
            ],
            output_names=["logits", "present_keys", "present_values", "cross_attentions"],
            dynamic_shapes={
                "input_ids": {0: batch},
                "encoder_attention_mask": {0: batch, 1: src},
                "past_keys": {1: batch, 3: past},
                "past_values": {1: batch, 3: past},
                "cross_keys": {1: batch, 3: src},
                "cross_values": {1: batch, 3: src},
            },
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
        )
    settings = RuntimeSettings(providers="CPUExecutionProvider")
    try:
        enc_s = OnnxSession(out_dir / ENCODER_FILE, settings)
        dec_s = OnnxSession(out_dir / DECODER_FILE, settings)
        worst = _parity(model, enc, dec, enc_s, dec_s)
        if not worst <= tolerance:
            raise ExportError(
                f"ONNX Runtime and PyTorch differ by {worst:.3g} (max abs) > {tolerance:g}; "
                "the ONNX files were removed"
            )
    except Exception:
        for f in out_dir.iterdir():
            f.unlink()
        raise
    return {"encoder": enc_s, "decoder": dec_s, "parity_max_abs": worst}


def export(folder: Path, out_dir: Path, *, tolerance: float = 1e-4) -> dict[str, Any]:
    """Export a Marian folder, check it against PyTorch, write a verified model folder."""
    import torch

    verified = (folder / "genserve.json").is_file()
    source_manifest = load_manifest(folder, kind="translation") if verified else None
    model = load_marian(folder)
    graphs = export_graphs(model, out_dir, tolerance=tolerance)
    enc_s, dec_s, worst = graphs["encoder"], graphs["decoder"], graphs["parity_max_abs"]
    cfg = model.config
    for name in TOKENIZER_FILES:
        shutil.copy(folder / name, out_dir / name)
    defaults = generation_defaults(folder, cfg)
    (out_dir / SETTINGS_FILE).write_text(json.dumps(defaults, indent=2) + "\n")
    specs_in = tuple(enc_s.inputs.values()) + tuple(dec_s.inputs.values())
    specs_out = tuple(enc_s.outputs.values()) + tuple(dec_s.outputs.values())
    write_manifest(
        out_dir,
        kind="translation",
        name=source_manifest.name if source_manifest else folder.name,
        files=[ENCODER_FILE, DECODER_FILE, *TOKENIZER_FILES, SETTINGS_FILE],
        inputs=tuple(
            _prefixed(s, "encoder" if i < len(enc_s.inputs) else "decoder")
            for i, s in enumerate(specs_in)
        ),
        outputs=tuple(
            _prefixed(s, "encoder" if i < len(enc_s.outputs) else "decoder")
            for i, s in enumerate(specs_out)
        ),
        config={"source_lang": "en", "target_lang": "fr", **defaults},
        source={
            "format": "huggingface-marian",
            "folder": _display(folder),
            "weights_sha256": source_manifest.files.get("model.safetensors")
            if source_manifest
            else None,
            "opset": OPSET,
            "torch": torch.__version__,
            "parity_max_abs": worst,
        },
        recipe=source_manifest.recipe if source_manifest else {},
    )
    return {"parity_max_abs": worst, "folder": str(out_dir)}


def _prefixed(spec: TensorSpec, graph: str) -> TensorSpec:
    return TensorSpec(f"{graph}/{spec.name}", spec.dtype, spec.shape)


def _display(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else path.name


def _parity(model: Any, enc: Any, dec: Any, enc_s: Any, dec_s: Any) -> float:
    """Largest difference of ORT against the torch wrappers and against transformers."""
    import torch

    rng = np.random.default_rng(0)
    vocab = model.config.vocab_size
    ids = rng.integers(3, vocab, size=(3, 9))
    ids[:, -1] = 1
    ids[1, 6:] = 0
    ids[1, 5] = 1
    mask = (ids != 0).astype(np.int64)
    worst = 0.0
    ck, cv = enc_s.run({"input_ids": ids, "attention_mask": mask}).values()
    with torch.no_grad():
        tk, tv = enc(torch.from_numpy(ids), torch.from_numpy(mask))
        hf_enc = model.model.encoder(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state
        layer0 = model.model.decoder.layers[0].encoder_attn
        hf_k0 = layer0.k_proj(hf_enc)
    worst = max(worst, float(np.abs(ck - tk.numpy()).max()), float(np.abs(cv - tv.numpy()).max()))
    # Our encoder against transformers' (valid positions only).
    b, h, s, d = tk[0].shape
    ours_k0 = tk[0].transpose(1, 2).reshape(b, s, h * d).numpy()
    valid = mask.astype(bool)
    worst = max(worst, float(np.abs(ours_k0[valid] - hf_k0.numpy()[valid]).max()))

    layers, heads, head_dim = ck.shape[0], ck.shape[2], ck.shape[4]
    pk = np.zeros((layers, 3, heads, 0, head_dim), np.float32)
    pv = pk.copy()
    tokens = np.zeros((3, 1), np.int64)
    steps = []
    for _ in range(4):
        out = dec_s.run(
            {
                "input_ids": tokens,
                "encoder_attention_mask": mask,
                "past_keys": pk,
                "past_values": pv,
                "cross_keys": ck,
                "cross_values": cv,
            }
        )
        steps.append(out["logits"])
        pk, pv = out["present_keys"], out["present_values"]
        tokens = out["logits"].argmax(-1)[:, None]
    # transformers, teacher-forced on the same tokens
    decoder_input = np.concatenate(
        [np.zeros((3, 1), np.int64)] + [s.argmax(-1)[:, None] for s in steps[:-1]], axis=1
    )
    with torch.no_grad():
        hf = model(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            decoder_input_ids=torch.from_numpy(decoder_input),
        ).logits.numpy()
    for t, logits in enumerate(steps):
        worst = max(worst, float(np.abs(logits - hf[:, t]).max()))
    return worst
