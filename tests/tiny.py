"""A tiny random CNN that runs a conformance check in milliseconds, with named layers like a real net."""
from __future__ import annotations

import torch
from torch import nn

from fvopt.models import FeatureModel


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flat(self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))))


def tiny_model() -> FeatureModel:
    torch.manual_seed(0)
    return FeatureModel(TinyNet(), "tiny", input_size=32, min_size=8, weights="random")
