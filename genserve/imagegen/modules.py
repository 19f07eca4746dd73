"""The three Stable Diffusion graphs as torch modules, written for ONNX export.

Build-time only (imports torch). Each wraps a diffusers / transformers component so
that its forward takes and returns plain tensors, the interface ``export.py`` traces.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TextEncoder(nn.Module):
    """input_ids (B, T) -> last_hidden_state (B, T, D)."""

    def __init__(self, text: Any) -> None:
        super().__init__()
        self.text = text

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text(input_ids)[0]


class UNet(nn.Module):
    """sample, timestep, encoder_hidden_states -> the predicted noise."""

    def __init__(self, unet: Any) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states).sample


class VaeDecoder(nn.Module):
    """latents (already divided by the VAE's scaling factor) -> image in [-1, 1]."""

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents).sample
