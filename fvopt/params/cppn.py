"""Lucid's CPPN: the image is a small network of the pixel coordinates, z is that network's weights.

Compositional pattern-producing networks (Stanley 2007) as Lucid's `lucid/optvis/param/cppn.py`
builds them (checked in its source): coordinates in [-sqrt(3), sqrt(3)] (unit standard deviation),
`depth` 1x1 layers of `width` channels (8 and 24), each followed by the composite activation
concat(atan(x) / 0.67, atan(x)^2 / 0.6) (Lucid's "biased" coefficients: the RMS of atan and
atan^2 of unit normal noise), then a 1x1 layer to the image channels and a sigmoid. Lucid's
initialization: weights variance-scaling (fan-in, truncated normal, scale 1), biases N(0, 0.1),
the output layer's weights zero (the start is a flat color). One difference: Lucid shares one
network across a batch; here every image of a batch is its own network (its own z), so a
population can be ranked. Non-square images keep square pixels: the longer side spans
[-sqrt(3), sqrt(3)].

Adam at a low rate: Lucent's README and examples use Adam lr 5e-3 for `param.cppn` (Lucid's
notebook rate could not be checked here); fvopt's default Adam rate (0.05) is for pixel-like
parameterizations, so give `--lr 0.005`.

Zero-order search uses `reduced()`: every bias and the output layer free (339 values for RGB), the
hidden weights frozen at a fixed random draw (seed 0).
"""

from __future__ import annotations

import math

import torch

from ..config.options import Option
from .base import Parameterization, Subspace
from .registry import register_param

ATAN_RMS, ATAN_SQ_RMS = 0.67, 0.6  # Lucid's _composite_activation(biased=True)
COORD_RANGE = 3.0**0.5
BIAS_SD = 0.1
TRUNC_NORMAL_STD = 0.87962566103423978  # std of a unit normal truncated at +-2: TF's variance_scaling divides by it


def _hw(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def composite(x: torch.Tensor) -> torch.Tensor:
    a = torch.atan(x)
    return torch.cat([a / ATAN_RMS, a * a / ATAN_SQ_RMS], -1)


class CPPNParam(Parameterization):
    """z (n, dim) = the weights and biases of n CPPNs, each drawing one image (n, C, H, W)."""

    name = "cppn"

    def __init__(self, size, width: int = 24, depth: int = 8, channels: int = 3) -> None:
        super().__init__()
        self.size = size
        self.channels = channels
        self.color_source = "cppn"
        self.width, self.depth = width, depth
        h, w = _hw(size)
        side = max(h, w)
        ys = (
            torch.linspace(-COORD_RANGE, COORD_RANGE, side)[(side - h) // 2 : (side - h) // 2 + h]
            if h < side
            else torch.linspace(-COORD_RANGE, COORD_RANGE, h)
        )
        xs = (
            torch.linspace(-COORD_RANGE, COORD_RANGE, side)[(side - w) // 2 : (side - w) // 2 + w]
            if w < side
            else torch.linspace(-COORD_RANGE, COORD_RANGE, w)
        )
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        self.register_buffer("coords", torch.stack([x, y], -1).reshape(1, h * w, 2))
        # (fan_in, fan_out) per layer: 2 coordinates in, 2*width after each composite activation
        self.shapes = [(2, width)] + [(2 * width, width)] * (depth - 1) + [(2 * width, channels)]
        self.offsets = []
        offset = 0
        for fan_in, fan_out in self.shapes:
            self.offsets.append(offset)
            offset += fan_in * fan_out + fan_out
        self.dim = offset
        if width != 24 or depth != 8:
            self.name = f"cppn:width={width},depth={depth}"

    def _layer(self, z: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        fan_in, fan_out = self.shapes[i]
        start = self.offsets[i]
        weight = z[:, start : start + fan_in * fan_out].reshape(-1, fan_in, fan_out)
        bias = z[:, start + fan_in * fan_out : start + fan_in * fan_out + fan_out].reshape(-1, 1, fan_out)
        return weight, bias

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        parts = []
        for i, (fan_in, fan_out) in enumerate(self.shapes):
            if i == len(self.shapes) - 1:
                weight = torch.zeros(n, fan_in * fan_out)
            else:
                std = math.sqrt(1.0 / fan_in) / TRUNC_NORMAL_STD
                weight = torch.nn.init.trunc_normal_(
                    torch.empty(n, fan_in * fan_out), 0.0, std, -2 * std, 2 * std, generator=generator
                )
            parts += [weight, torch.randn((n, fan_out), generator=generator) * BIAS_SD]
        return torch.cat(parts, 1).to(self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        h, w = _hw(self.size)
        x = self.coords.expand(n, -1, -1)
        for i in range(len(self.shapes) - 1):
            weight, bias = self._layer(z, i)
            x = composite(torch.baddbmm(bias, x, weight))
        weight, bias = self._layer(z, len(self.shapes) - 1)
        rgb = torch.sigmoid(torch.baddbmm(bias, x, weight))  # (n, pixels, C)
        return rgb.transpose(1, 2).reshape(n, self.channels, h, w)

    def reduced(self) -> Parameterization:
        """Every bias and the whole output layer free; hidden weights frozen at a seed-0 draw."""
        free = torch.zeros(self.dim, dtype=torch.bool)
        for i, (fan_in, fan_out) in enumerate(self.shapes):
            start = self.offsets[i]
            if i == len(self.shapes) - 1:
                free[start : start + fan_in * fan_out + fan_out] = True
            else:
                free[start + fan_in * fan_out : start + fan_in * fan_out + fan_out] = True
        index = torch.nonzero(free)[:, 0]
        base = self.init(1, torch.Generator().manual_seed(0))[0].cpu()
        label = self.name + ("," if ":" in self.name else ":") + "reduced=true"
        return Subspace(self, index, base, label).to(self.device)


@register_param(
    "cppn",
    "Lucid's CPPN: the image is a network of the pixel coordinates (width 24, depth 8, "
    "atan composite activation); use Adam with --lr 0.005",
    {
        "width": Option(int, low=1, high=512),
        "depth": Option(int, low=1, high=64),
        "reduced": Option(bool, help="only the biases and the output layer free (zero-order search)"),
    },
    ("cppn", "cppn:width=8,depth=3", "cppn:reduced=true"),
)
def _build_cppn(
    size, width: int = 24, depth: int = 8, reduced: bool = False, *, channels: int = 3, color=None
) -> Parameterization:
    if color is not None:
        raise ValueError("a CPPN draws its own colors: a decorrelation basis does not apply to it")
    full = CPPNParam(size, width, depth, channels)
    return full.reduced() if reduced else full
