"""Robustness transforms: batched, differentiable, pure torch, sampled first and applied second.

Drawing a transform's random parameters apart from applying them lets one draw be replayed:
every candidate of a CMA-ES generation sees the same draw (common random numbers), L-BFGS keeps
one draw for a whole step, and the final evaluator uses a fixed set of draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .errors import FvoptError


def _choice(options: Sequence, generator: torch.Generator):
    return options[int(torch.randint(len(options), (1,), generator=generator))]


@dataclass(frozen=True)
class Pad:
    """Pad with a constant gray so that jitter and rotation do not reveal a hard border."""

    pad: int = 12
    fill: float = 0.5

    def sample(self, generator: torch.Generator) -> None:
        return None

    def apply(self, x: torch.Tensor, draw: None) -> torch.Tensor:
        return F.pad(x, [self.pad] * 4, mode="constant", value=self.fill)


@dataclass(frozen=True)
class Jitter:
    """Crop `d` pixels at a random offset (Lucent's jitter: the image shrinks by d)."""

    d: int = 8

    def sample(self, generator: torch.Generator) -> tuple[int, int]:
        return tuple(int(v) for v in torch.randint(self.d, (2,), generator=generator))

    def apply(self, x: torch.Tensor, draw: tuple[int, int]) -> torch.Tensor:
        dy, dx = draw
        h, w = x.shape[-2:]
        return x[..., dy:dy + h - self.d, dx:dx + w - self.d]


@dataclass(frozen=True)
class RandomScale:
    """Resize by a factor drawn from `scales` (bilinear)."""

    scales: tuple[float, ...] = tuple(1 + (i - 5) / 50.0 for i in range(11))

    def sample(self, generator: torch.Generator) -> float:
        return float(_choice(self.scales, generator))

    def apply(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        if scale == 1.0:
            return x
        size = [max(1, int(round(s * scale))) for s in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class RandomRotate:
    """Rotate by an angle in degrees drawn from `angles`; uncovered corners are filled with gray."""

    angles: tuple[float, ...] = tuple(range(-10, 11)) + (0,) * 5
    fill: float = 0.5

    def sample(self, generator: torch.Generator) -> float:
        return float(_choice(self.angles, generator))

    def apply(self, x: torch.Tensor, angle: float) -> torch.Tensor:
        if angle == 0:
            return x
        a = math.radians(angle)
        theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],
                             dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + self.fill


@dataclass(frozen=True)
class ColorJitter:
    """Small per-channel gain and offset, so features cannot rely on one exact color."""

    gain: float = 0.05
    offset: float = 0.05

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        g = 1 + (torch.rand(3, generator=generator) * 2 - 1) * self.gain
        o = (torch.rand(3, generator=generator) * 2 - 1) * self.offset
        return g, o

    def apply(self, x: torch.Tensor, draw) -> torch.Tensor:
        g, o = (t.to(x.device, x.dtype).view(1, 3, 1, 1) for t in draw)
        return x * g + o


@dataclass(frozen=True)
class Compose:
    """Transforms applied in order; a draw is the tuple of the parts' draws."""

    transforms: tuple[Any, ...] = field(default_factory=tuple)

    def sample(self, generator: torch.Generator) -> tuple:
        return tuple(t.sample(generator) for t in self.transforms)

    def apply(self, x: torch.Tensor, draw: tuple) -> torch.Tensor:
        for t, d in zip(self.transforms, draw):
            x = t.apply(x, d)
        return x

    def __len__(self) -> int:
        return len(self.transforms)


def standard_transforms() -> Compose:
    """Lucent's default set: pad 12 (gray), jitter 8, scale 0.90..1.10, rotate -10..10 degrees, jitter 4."""
    return Compose((Pad(12, 0.5), Jitter(8), RandomScale(), RandomRotate(), Jitter(4)))


TRANSFORM_SETS = {
    "default": standard_transforms,
    "color": lambda: Compose(standard_transforms().transforms + (ColorJitter(),)),
    "none": lambda: Compose(()),
}


def make_transforms(spec: str | Compose | None) -> Compose:
    """`default` (Lucent's), `color` (default plus color jitter), `none`, or a Compose."""
    if spec is None:
        return standard_transforms()
    if isinstance(spec, Compose):
        return spec
    if spec not in TRANSFORM_SETS:
        raise FvoptError(f"unknown transform set '{spec}'. Known: {', '.join(TRANSFORM_SETS)}")
    return TRANSFORM_SETS[spec]()
