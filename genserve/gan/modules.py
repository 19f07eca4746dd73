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
    """AC-GAN discriminator: a real/fake logit and class logits from shared features.

    With ``projection`` (Miyato & Koyama, 2018) the class also enters the real/fake logit,
    as the inner product of a learnt class embedding with the features: the logit then
    judges "a real digit of this class", and training needs no classification loss.

    With ``minibatch_std`` (Karras et al., 2018) the last feature map gains one channel:
    the spread of the features across each group of four images, so that a batch of
    near-identical fakes is told apart from a batch of real digits.
    """

    def __init__(
        self, cfg: GanConfig, *, minibatch_std: bool = False, projection: bool = False
    ) -> None:
        super().__init__()
        b = cfg.base_channels
        self.minibatch_std = minibatch_std
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(cfg.channels, b, 4, 2, 1)),
            nn.LeakyReLU(0.2, True),  # 16
            spectral_norm(nn.Conv2d(b, b * 2, 4, 2, 1)),
            nn.LeakyReLU(0.2, True),  # 8
            spectral_norm(nn.Conv2d(b * 2, b * 4, 4, 2, 1)),
            nn.LeakyReLU(0.2, True),  # 4
        )
        flat = (b * 4 + int(minibatch_std)) * (cfg.image_size // 8) ** 2
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3))
        self.adv = spectral_norm(nn.Linear(flat, 1))
        self.cls = nn.Linear(flat, cfg.num_classes)
        self.embed = spectral_norm(nn.Embedding(cfg.num_classes, flat)) if projection else None

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        if self.minibatch_std:
            n, c, hh, ww = h.shape
            group = 4 if n % 4 == 0 else 1
            spread = h.view(group, -1, c, hh, ww).std(dim=0, unbiased=False)
            spread = spread.mean(dim=(1, 2, 3)).repeat(group)  # one value per image
            h = torch.cat([h, spread.view(n, 1, 1, 1).expand(n, 1, hh, ww)], dim=1)
        h = self.head(h)
        adv = self.adv(h).squeeze(1)
        if self.embed is not None and y is not None:
            adv = adv + (self.embed(y) * h).sum(dim=1)
        return adv, self.cls(h)
