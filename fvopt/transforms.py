"""Robustness transforms: batched, differentiable, pure torch, sampled first and applied second.

Drawing a transform's random parameters apart from applying them lets one draw be replayed:
every candidate of a CMA-ES generation sees the same draw (common random numbers), L-BFGS keeps
one draw for a whole step, and the final evaluator uses a fixed set of draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .device import to_device
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
        theta = to_device([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], x.device, x.dtype)
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
        g, o = (to_device(t, x.device, x.dtype).view(1, 3, 1, 1) for t in draw)
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


@dataclass(frozen=True)
class LucentTransforms:
    """Lucent's default chain (pad, jitter, scale, rotate, jitter) as one resampling.

    Same draws as `Compose((Pad, Jitter, RandomScale, RandomRotate, Jitter))`, but the geometric
    steps are composed into one sampling grid, so the image is interpolated once (less blur) and
    the step costs one `grid_sample` instead of two interpolations and three copies.

    With `keep_size` (the default set), the output keeps the input's size: a window of the input's
    size centered on what Lucent's chain would output. Why: Lucent's chain grows a 224 px image
    to 212..260 px (about 234 on average), and the network then costs 10-35% more per pass on the
    CPU than at 224 (measured); a fixed size also makes every step cost the same. `lucent` keeps
    Lucent's exact output sizes, for parity.
    """

    pad: int = 12
    jitter: int = 8
    scales: tuple[float, ...] = RandomScale().scales
    angles: tuple[float, ...] = RandomRotate().angles
    jitter_after: int = 4
    fill: float = 0.5
    keep_size: bool = True

    @property
    def transforms(self) -> tuple:
        """The equivalent chain of primitive transforms."""
        return (Pad(self.pad, self.fill), Jitter(self.jitter), RandomScale(self.scales),
                RandomRotate(self.angles, self.fill), Jitter(self.jitter_after))

    def sample(self, generator: torch.Generator) -> tuple:
        return tuple(t.sample(generator) for t in self.transforms)

    def apply(self, x: torch.Tensor, draw: tuple) -> torch.Tensor:
        _, (dy1, dx1), scale, angle, (dy2, dx2) = draw
        h, w = x.shape[-2:]
        h0, w0 = h + 2 * self.pad - self.jitter, w + 2 * self.pad - self.jitter
        h1, w1 = (max(1, int(round(s * scale))) for s in (h0, w0)) if scale != 1.0 else (h0, w0)
        h2, w2 = h1 - self.jitter_after, w1 - self.jitter_after
        top, left = float(dy2), float(dx2)
        if self.keep_size:  # a window of the input's size, centered on Lucent's output
            top, left = top + (h2 - h) / 2, left + (w2 - w) / 2
            h2, w2 = h, w
        # Output pixel -> input pixel is affine: compose it as one matrix on (col, row, 1).
        a = math.radians(angle)
        rotate = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0, 0, 1]])
        m = _to_normalized(w, h) @ _shift(dx1 - self.pad, dy1 - self.pad) @ _unscale(w0 / w1, h0 / h1) \
            @ _to_pixels(w1, h1) @ rotate @ _to_normalized(w1, h1) @ _shift(left, top) @ _to_pixels(w2, h2)
        theta = to_device(m[:2], x.device, x.dtype).expand(x.shape[0], 2, 3)
        grid = F.affine_grid(theta, [x.shape[0], x.shape[1], h2, w2], align_corners=False)
        return F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + self.fill

    def __len__(self) -> int:
        return 5


def _to_pixels(w: float, h: float) -> np.ndarray:
    """Normalized coordinates (align_corners=False) of a w x h image -> pixel coordinates."""
    return np.array([[w / 2, 0, (w - 1) / 2], [0, h / 2, (h - 1) / 2], [0, 0, 1]])


def _to_normalized(w: float, h: float) -> np.ndarray:
    return np.linalg.inv(_to_pixels(w, h))


def _shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], dtype=float)


def _unscale(sx: float, sy: float) -> np.ndarray:
    """A pixel of an image resized by 1/s -> a pixel of the original (F.interpolate's mapping)."""
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])


def standard_transforms() -> LucentTransforms:
    """Lucent's default draws (pad 12 gray, jitter 8, scale 0.90..1.10, rotate -10..10 degrees,
    jitter 4), composed into one resampling that keeps the image size."""
    return LucentTransforms()


TRANSFORM_SETS = {
    "default": standard_transforms,
    "lucent": lambda: LucentTransforms(keep_size=False),
    "color": lambda: Compose((standard_transforms(), ColorJitter())),
    "none": lambda: Compose(()),
}


def make_transforms(spec: "str | Compose | LucentTransforms | None") -> "Compose | LucentTransforms":
    """`default` (Lucent's draws, size kept), `lucent` (Lucent's exact output sizes), `color`
    (default plus color jitter), `none`, or a transform object."""
    if spec is None:
        return standard_transforms()
    if not isinstance(spec, str):
        return spec
    if spec not in TRANSFORM_SETS:
        raise FvoptError(f"unknown transform set '{spec}'. Known: {', '.join(TRANSFORM_SETS)}")
    return TRANSFORM_SETS[spec]()
