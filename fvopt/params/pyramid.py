"""Laplacian-pyramid parameterization: images as a sum of upsampled levels, coarse to fine."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..io.canvas import hw
from ..config.options import Option
from .base import Parameterization, Subspace, from_rgb, normal, to_rgb
from .color import ColorBasis, basis_for
from .registry import register_param


def default_levels(size: int | tuple[int, int]) -> int:
    """As many octaves as keep the coarsest level at least 6 pixels wide (on the shorter side)."""
    return max(1, int(math.floor(math.log2(min(hw(size)) / 6))) + 1)


class PyramidParam(Parameterization):
    """Levels of side size/2^l (l = 0 finest) summed after bilinear upsampling, then decorrelate and sigmoid.

    Coarse levels receive the summed gradient of many pixels, so optimization favors low
    frequencies, as a Laplacian pyramid should. z is the levels concatenated, coarsest last.
    `sides` holds each level's (height, width); `size` is a side or (height, width).
    """

    name = "pyramid"

    def __init__(
        self,
        size: int | tuple[int, int],
        levels: int | None = None,
        decorrelate: bool = True,
        sd: float = 0.01,
        channels: int = 3,
        color: ColorBasis | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        h, w = hw(size)
        self.levels = default_levels(size) if levels is None else levels
        if self.levels < 1 or min(h, w) / 2 ** (self.levels - 1) < 1:
            raise ValueError(f"pyramid levels must be 1..{default_levels(size) + 2} for size {size}, not {levels}")
        self.sides = [(math.ceil(h / 2**l), math.ceil(w / 2**l)) for l in range(self.levels)]
        self.channels = channels
        self.basis = basis_for(channels, color)
        self.decorrelate = decorrelate
        self.color_source = self.basis.source if decorrelate else "none"  # the trace names what ran
        self.sd = sd
        self.dim = sum(channels * a * b for a, b in self.sides)
        self.register_buffer("color", self.basis.matrix.clone())

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return normal((n, self.dim), self.sd, generator).to(self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        total = 0
        offset = 0
        full = self.image_hw
        for side in self.sides:
            count = self.channels * side[0] * side[1]
            level = z[:, offset : offset + count].reshape(n, self.channels, *side)
            offset += count
            if side != full:
                level = F.interpolate(level, size=full, mode="bilinear", align_corners=False)
            total = total + level
        return to_rgb(total, self.decorrelate, self.color)

    def from_image(self, images: torch.Tensor) -> torch.Tensor:
        """A Laplacian decomposition of the photo's logits, coarse to fine: each level holds what the
        coarser ones miss at its resolution (area downsampling), and the finest level the exact rest.
        So `pyramid:free=F` seeded from a photo moves the photo's coarse structure."""
        n = images.shape[0]
        target = from_rgb(images, self.decorrelate, self.color).double()
        levels: list[torch.Tensor] = [None] * self.levels  # type: ignore[list-item]
        total = torch.zeros_like(target)
        for l in reversed(range(self.levels)):  # coarsest first
            side = self.sides[l]
            rest = target - total
            level = rest if side == self.image_hw else F.adaptive_avg_pool2d(rest, side)
            levels[l] = level
            up = (
                level
                if side == self.image_hw
                else F.interpolate(level, size=self.image_hw, mode="bilinear", align_corners=False)
            )
            total = total + up
        return torch.cat([lv.reshape(n, -1) for lv in levels], 1).float()

    def reduced(self, free: int = 2) -> Parameterization:
        """Only the `free` coarsest levels free (`pyramid:free=F`); the finer ones stay zero."""
        if not 1 <= free <= self.levels:
            raise ValueError(f"pyramid free levels must be 1..{self.levels}, not {free}")
        start = sum(self.channels * a * b for a, b in self.sides[: self.levels - free])
        index = torch.arange(start, self.dim)
        return Subspace(self, index, torch.zeros(self.dim), f"pyramid:levels={self.levels},free={free}").to(self.device)


@register_param(
    "pyramid",
    "Laplacian pyramid: a sum of upsampled levels; pyramid:free=F frees the F coarsest",
    {"levels": Option(int, low=1), "free": Option(int, low=1), "decorrelate": Option(bool), "sd": Option(float, low=0)},
    ("pyramid", "pyramid:free=2", "pyramid:levels=3"),
)
def _build_pyramid(
    size: int | tuple[int, int],
    free: int | None = None,
    *,
    channels: int = 3,
    color: ColorBasis | None = None,
    **options,
) -> Parameterization:
    full = PyramidParam(size, channels=channels, color=color, **options)
    return full if free is None else full.reduced(free)
