"""An example of your own network for fvopt: a small grayscale CNN, 28 px like MNIST.

`stripes_net()` is the factory `fvopt --model docs/examples/my_net.py:stripes_net` calls; its
weights come from `--weights docs/examples/stripes_net.pt`, which `python docs/examples/my_net.py`
trains in a few seconds on synthetic images: class 0 horizontal stripes, class 1 vertical
stripes, class 2 noise, each shown to the network normalized with mean 0.5 and std 0.25.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class StripesNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.head(self.pool(x).flatten(1))


def stripes_net() -> nn.Module:
    """The factory: the network, untrained (fvopt loads the weights given with --weights)."""
    return StripesNet()


def batch(n: int, generator: torch.Generator, size: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """n images in [0, 1] (n, 1, size, size) and their labels."""
    labels = torch.randint(3, (n,), generator=generator)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    phase = torch.rand(n, 1, 1, generator=generator) * 6.28
    freq = 0.4 + 0.8 * torch.rand(n, 1, 1, generator=generator)
    stripes = torch.where(labels[:, None, None] == 0, torch.sin(freq * yy + phase), torch.sin(freq * xx + phase))
    noise = torch.rand(n, size, size, generator=generator) * 2 - 1
    images = 0.5 + 0.4 * torch.where(labels[:, None, None] == 2, noise, stripes)
    return images[:, None].clamp(0, 1), labels


def train(steps: int = 400, seed: int = 0) -> tuple[nn.Module, float]:
    """The network trained with Adam, and its accuracy on 512 fresh images."""
    torch.manual_seed(seed)
    net = StripesNet()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        x, y = batch(32, g)
        loss = nn.functional.cross_entropy(net((x - 0.5) / 0.25), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch(512, g)
    with torch.no_grad():
        accuracy = float((net((x - 0.5) / 0.25).argmax(1) == y).float().mean())
    return net, accuracy


if __name__ == "__main__":
    net, accuracy = train()
    out = Path(__file__).with_name("stripes_net.pt")
    torch.save(net.state_dict(), out)
    print(f"wrote {out}: accuracy {accuracy:.3f} on 512 fresh images")
