"""The class-conditional DCGAN generator and its discriminator (PyTorch, build-time only).

The generator maps a latent ``z`` (N, z_dim) and class weights ``y`` (N, classes) to
images in [-1, 1]. ``y`` is one-hot for a digit; soft weights blend classes. The class
enters through the first transposed convolution (concatenated with ``z``), so every
layer works on one image at a time: a row's result never depends on the batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass(frozen=True)
class GanConfig:
    z_dim: int = 64
    num_classes: int = 10
    base_channels: int = 48
    image_size: int = 32
    channels: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Generator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        b = cfg.base_channels

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(True),
            ]

        self.net = nn.Sequential(
            nn.ConvTranspose2d(cfg.z_dim + cfg.num_classes, b * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(b * 4),
            nn.ReLU(True),  # 4x4
            *up(b * 4, b * 2),  # 8x8
            *up(b * 2, b),  # 16x16
            nn.ConvTranspose2d(b, cfg.channels, 4, 2, 1),  # 32x32
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, y], dim=1)[:, :, None, None])


class Discriminator(nn.Module):
    """AC-GAN discriminator: a real/fake logit and class logits from shared features."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        b = cfg.base_channels
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(cfg.channels, b, 4, 2, 1)),
            nn.LeakyReLU(0.2, True),  # 16
            spectral_norm(nn.Conv2d(b, b * 2, 4, 2, 1)),
            nn.LeakyReLU(0.2, True),  # 8
            spectral_norm(nn.Conv2d(b * 2, b * 4, 4, 2, 1)),
            nn.LeakyReLU(0.2, True),  # 4
            nn.Flatten(),
            nn.Dropout(0.3),
        )
        flat = b * 4 * (cfg.image_size // 8) ** 2
        self.adv = spectral_norm(nn.Linear(flat, 1))
        self.cls = nn.Linear(flat, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.adv(h).squeeze(1), self.cls(h)
