"""A small random generator: the example of `--param generator:FILE.py:FACTORY` and of its checks.

Real uses load a trained generator (a GAN's code, as XDream and Wang & Ponce search DeePSiM's
fc6 space); this one has fixed random weights (seed 0), so the same latent always draws the same
image. Its factory takes `size` and `channels`, which fvopt fills in with the run's, so it draws
at any size: a 4x4 map from the latent, two upsampling convolutions, resized to the run's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TinyGenerator(nn.Module):
    def __init__(self, dim: int = 16, size: tuple[int, int] = (32, 32), channels: int = 3, tanh: bool = False) -> None:
        super().__init__()
        self.latent_dim = dim
        self.size = tuple(size)
        self.tanh = tanh
        self.fc = nn.Linear(dim, 32 * 4 * 4)
        self.conv1 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 16, 3, padding=1)
        self.out = nn.Conv2d(16, channels, 1)
        g = torch.Generator().manual_seed(0)
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / max(1, p[0].numel()) ** 0.5))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc(z).view(-1, 32, 4, 4), 0.2)
        x = F.leaky_relu(self.conv1(F.interpolate(x, scale_factor=2, mode="nearest")), 0.2)
        x = F.leaky_relu(self.conv2(F.interpolate(x, scale_factor=2, mode="nearest")), 0.2)
        x = self.out(F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)) * 2.0
        return torch.tanh(x) if self.tanh else torch.sigmoid(x)


def make(size: tuple[int, int] = (32, 32), channels: int = 3, dim: int = 16) -> TinyGenerator:
    """Images in [0, 1] (a sigmoid at the end), latent size 16."""
    return TinyGenerator(dim, size, channels)


def make_tanh(size: tuple[int, int] = (32, 32), channels: int = 3, dim: int = 16) -> TinyGenerator:
    """Images in [-1, 1] (a tanh at the end, as most GANs): use it with output=pm1."""
    return TinyGenerator(dim, size, channels, tanh=True)
