"""A random small generator defined in a test file, loaded through `generator:FILE.py:FACTORY`.

`make` fits any run size (it takes `size` and `channels`); the other factories are the bad cases
the generator parameterization must refuse in one line before any model pass.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Tiny(nn.Module):
    def __init__(self, dim, size, channels):
        super().__init__()
        self.latent_dim = dim
        self.size = tuple(size)
        g = torch.Generator().manual_seed(1)
        self.fc = nn.Linear(dim, 8 * 4 * 4)
        self.conv = nn.Conv2d(8, channels, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, z):
        x = torch.tanh(self.fc(z)).view(-1, 8, 4, 4)
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return torch.sigmoid(2 * self.conv(x))


def make(size=(32, 32), channels=3, dim=12):
    return Tiny(dim, size, channels)


def fixed_size():  # always draws 16x16, whatever the run's size
    return Tiny(12, (16, 16), 3)


def not_an_image():  # a vector per latent, not an image batch
    return nn.Linear(12, 10)


def not_a_module():
    return "a generator"


def raises():
    raise RuntimeError("weights file missing")


def out_of_range(size=(32, 32)):
    class Scaled(Tiny):
        def forward(self, z):
            return 3 * super().forward(z)

    return Scaled(12, size, 3)
