"""The Marian encoder and one decoder step as torch modules, written for ONNX export.

Build-time only (imports torch). ``export.py`` traces these two modules; they reuse the
Marian model's own layers and weights but lay the computation out so that the exported
graphs have genserve's interface (see ``export.py``): the encoder returns every decoder
layer's cross-attention keys and values, and the decoder step takes each layer's
self-attention KV cache (read only) and returns this step's keys and values and its
cross-attention weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Heads:
    """Splits a (B, T, D) projection into heads and merges them back."""

    def __init__(self, heads: int, dim: int) -> None:
        self.heads, self.dim = heads, dim

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.dim).transpose(1, 2)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, Dh) -> (B, T, D)."""
        b, _, t, _ = x.shape
        return x.transpose(1, 2).reshape(b, t, self.heads * self.dim)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention; returns the output and the attention weights."""
    scores = torch.matmul(q, k.transpose(2, 3)) * scale
    if mask is not None:
        scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, v), weights


def additive_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, S) 1/0 -> (B, 1, 1, S) 0 / most-negative, as transformers builds it."""
    m = attention_mask[:, None, None, :].to(torch.float32)
    return (1.0 - m) * torch.finfo(torch.float32).min


def _heads(config: Any) -> Heads:
    return Heads(config.decoder_attention_heads, config.d_model // config.decoder_attention_heads)


class MarianEncoderExport(nn.Module):
    """input_ids, attention_mask (B, S) -> cross_keys, cross_values (L, B, H, S, Dh)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        cfg = model.config
        self.encoder = model.model.encoder
        self.cross = nn.ModuleList(layer.encoder_attn for layer in model.model.decoder.layers)
        self.heads = Heads(cfg.encoder_attention_heads, cfg.d_model // cfg.encoder_attention_heads)
        self.dec_heads = _heads(cfg)

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
    """One decoder step with a self-attention KV cache (see ``export.py`` for the tensors): the
    caches come one tensor per layer, so that ONNX Runtime reads the caller's arrays
    where they are instead of splitting a stacked copy every step."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.decoder = model.model.decoder
        self.lm_head = model.lm_head
        self.register_buffer("final_logits_bias", model.final_logits_bias.clone())
        # Marian's checkpoints (opus-mt's, the demo's) keep this bias at zero: the graph
        # then leaves out its add, a pass over batch x vocabulary every step
        self.logits_bias = bool(model.final_logits_bias.any())
        self.heads = _heads(model.config)

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        positions: torch.Tensor,
        past_keys: list[torch.Tensor],
        past_values: list[torch.Tensor],
        cross_keys: list[torch.Tensor],
        cross_values: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        dec = self.decoder
        h = dec.embed_tokens(input_ids) * dec.embed_scale
        h = h + dec.embed_positions.weight[positions][:, None]  # each row its own position
        cross_mask = additive_mask(encoder_attention_mask)
        # Row i's past is columns [0, positions[i]) of the cache, the rest padding (spare
        # columns, or rows that joined a running batch late: search.py). The new key and
        # value are attended to beside the past, not written into a copy of it: the step
        # returns only them, and the caller writes them at column positions[i] in place.
        columns = torch.arange(past_keys[0].shape[2])[None]
        past_mask = additive_mask((columns < positions[:, None]).long())  # (B, 1, 1, T)
        new_keys, new_values, attentions = [], [], []
        for i, layer in enumerate(dec.layers):
            a = layer.self_attn
            q = self.heads.split(a.q_proj(h))  # (B, H, 1, Dh)
            k_new = self.heads.split(a.k_proj(h))
            v_new = self.heads.split(a.v_proj(h))
            new_keys.append(k_new)
            new_values.append(v_new)
            past = torch.matmul(q, past_keys[i].transpose(2, 3)) * a.scaling + past_mask
            here = (q * k_new).sum(-1, keepdim=True) * a.scaling  # (B, H, 1, 1)
            weights = torch.softmax(torch.cat([past, here], -1), dim=-1)
            out = torch.matmul(weights[..., :-1], past_values[i]) + weights[..., -1:] * v_new
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
        # log-probabilities, not logits: ONNX Runtime normalises the vocabulary (one fused,
        # vectorised kernel) where the search did it in numpy, passes over 58,101 columns
        # a row that cost a sixth of an opus-mt-size step at batch 32
        logits = self.lm_head(h[:, 0])
        if self.logits_bias:
            logits = logits + self.final_logits_bias
        log_probs = torch.log_softmax(logits, dim=-1)
        return log_probs, torch.stack(new_keys), torch.stack(new_values), torch.stack(attentions)
