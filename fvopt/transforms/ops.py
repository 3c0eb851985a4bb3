"""Robustness transforms: batched, differentiable, pure torch, sampled first and applied second.

Drawing a transform's random parameters apart from applying them lets one draw be replayed:
every candidate of a CMA-ES generation sees the same draw (common random numbers), L-BFGS keeps
one draw for a whole step, and the final evaluator uses a fixed set of draws.

This module holds the operations only; naming them (the grammar, `make_transforms`) sits above it
in fvopt.transforms.grammar, and fvopt.transforms is the public face of both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..runtime.device import to_device


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
        return x[..., dy : dy + h - self.d, dx : dx + w - self.d]


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
        return (
            F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + self.fill
        )


@dataclass(frozen=True)
class ColorJitter:
    """Small per-channel gain and offset, so features cannot rely on one exact color."""

    gain: float = 0.05
    offset: float = 0.05
    channels: int = 3  # one gain and offset per channel (fvopt.transforms.fit sets it to the images')

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        g = 1 + (torch.rand(self.channels, generator=generator) * 2 - 1) * self.gain
        o = (torch.rand(self.channels, generator=generator) * 2 - 1) * self.offset
        return g, o

    def apply(self, x: torch.Tensor, draw) -> torch.Tensor:
        g, o = (to_device(t, x.device, x.dtype).view(1, self.channels, 1, 1) for t in draw)
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
        return (
            Pad(self.pad, self.fill),
            Jitter(self.jitter),
            RandomScale(self.scales),
            RandomRotate(self.angles, self.fill),
            Jitter(self.jitter_after),
        )

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
        m = (
            _to_normalized(w, h)
            @ _shift(dx1 - self.pad, dy1 - self.pad)
            @ _unscale(w0 / w1, h0 / h1)
            @ _to_pixels(w1, h1)
            @ rotate
            @ _to_normalized(w1, h1)
            @ _shift(left, top)
            @ _to_pixels(w2, h2)
        )
        theta = to_device(m[:2], x.device, x.dtype).expand(x.shape[0], 2, 3)
        grid = F.affine_grid(theta, [x.shape[0], x.shape[1], h2, w2], align_corners=False)
        return (
            F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + self.fill
        )

    def __len__(self) -> int:
        return 5


def _seed(generator: torch.Generator) -> int:
    """A draw that is only a seed: what it seeds is made on the image's device when applied."""
    return int(torch.randint(2**31 - 1, (1,), generator=generator))


def _device_generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _resample(x: torch.Tensor, m: np.ndarray, out: tuple[int, int], fill: float) -> torch.Tensor:
    """Resample x through the affine map m (output pixel -> input pixel, 3x3) into an image of
    size `out`; uncovered pixels are `fill` gray."""
    h, w = x.shape[-2:]
    theta = _to_normalized(w, h) @ m @ _to_pixels(out[1], out[0])
    theta = to_device(theta[:2], x.device, x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], *out], align_corners=False)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def _about_center(w: int, h: int, inner: np.ndarray) -> np.ndarray:
    c = _shift((w - 1) / 2, (h - 1) / 2)
    return c @ inner @ np.linalg.inv(c)


@dataclass(frozen=True)
class UniformRotate:
    """Rotate by an angle drawn uniformly from [low, high] degrees, keeping the size; gray corners."""

    low: float = -10.0
    high: float = 10.0
    fill: float = 0.5

    def sample(self, generator: torch.Generator) -> float:
        return self.low + float(torch.rand(1, generator=generator)) * (self.high - self.low)

    def apply(self, x: torch.Tensor, angle: float) -> torch.Tensor:
        return RandomRotate((angle,), self.fill).apply(x, angle)

    def describe(self) -> str:
        return f"rotate:{_num(self.low)}..{_num(self.high)}"


@dataclass(frozen=True)
class Zoom:
    """Scale about the center by a factor drawn uniformly from [low, high], keeping the size (as
    torchvision's RandomAffine scales); what leaves the frame is cut, what enters it is gray."""

    low: float = 0.9
    high: float = 1.1
    fill: float = 0.5

    def sample(self, generator: torch.Generator) -> float:
        return self.low + float(torch.rand(1, generator=generator)) * (self.high - self.low)

    def apply(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        if factor == 1.0:
            return x
        h, w = x.shape[-2:]
        return _resample(x, _about_center(w, h, np.diag([1 / factor, 1 / factor, 1.0])), (h, w), self.fill)

    def describe(self) -> str:
        return f"scale:{_num(self.low)}-{_num(self.high)}"


@dataclass(frozen=True)
class Affine:
    """torchvision's RandomAffine on a batch, differentiable: rotation uniform in [-degrees,
    degrees], translation uniform up to `translate` of the side, scale uniform in [low, high];
    size kept, gray fill, bilinear."""

    degrees: float = 10.0
    translate: float = 0.1
    low: float = 0.9
    high: float = 1.1
    fill: float = 0.5

    def sample(self, generator: torch.Generator) -> tuple[float, float, float, float]:
        u = torch.rand(4, generator=generator).tolist()
        return (
            (2 * u[0] - 1) * self.degrees,
            (2 * u[1] - 1) * self.translate,
            (2 * u[2] - 1) * self.translate,
            self.low + u[3] * (self.high - self.low),
        )

    def apply(self, x: torch.Tensor, draw: tuple[float, float, float, float]) -> torch.Tensor:
        angle, tx, ty, factor = draw
        h, w = x.shape[-2:]
        a = math.radians(angle)
        # output -> input: undo the translation, then the rotation and the scale about the center
        inverse = np.array([[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0], [0, 0, 1]]) / factor
        inverse[2, 2] = 1.0
        m = _about_center(w, h, inverse) @ _shift(-tx * w, -ty * h)
        return _resample(x, m, (h, w), self.fill)

    def describe(self) -> str:
        return f"affine:{_num(self.degrees)}/{_num(self.translate)}/{_num(self.low)}-{_num(self.high)}"


@dataclass(frozen=True)
class ColorAdjust:
    """torchvision's ColorJitter without hue (whose torchvision kernel is not differentiable):
    brightness, contrast and saturation factors drawn uniformly from [1 - b, 1 + b] and applied
    in that order with torchvision's functions (which clip to [0, 1], as torchvision does)."""

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def sample(self, generator: torch.Generator) -> tuple[float, float, float]:
        u = torch.rand(3, generator=generator).tolist()
        return tuple(
            max(0.0, 1 + (2 * v - 1) * b) for v, b in zip(u, (self.brightness, self.contrast, self.saturation))
        )

    def apply(self, x: torch.Tensor, draw: tuple[float, float, float]) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        b, c, s = draw
        return TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(x, b), c), s)

    def describe(self) -> str:
        return f"colorjitter:{_num(self.brightness)}/{_num(self.contrast)}/{_num(self.saturation)}"


@dataclass(frozen=True)
class Noise:
    """Additive noise of standard deviation `sd` (Gaussian) or uniform in [-sd/2, sd/2] (as MaCo
    adds both); drawn on the image's device from a seed, so one draw is replayable."""

    sd: float = 0.02
    uniform: bool = False

    def sample(self, generator: torch.Generator) -> int:
        return _seed(generator)

    def apply(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        g = _device_generator(seed, x.device)
        if self.uniform:
            return x + (torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype) - 0.5) * self.sd
        return x + torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype) * self.sd

    def describe(self) -> str:
        return f"{'unoise' if self.uniform else 'noise'}:{_num(self.sd)}"


@dataclass(frozen=True)
class Crops:
    """`n` random square crops per image, each resized to `size` px (the render size when the
    problem has one, else the image's side): MaCo's many crops per step. Sides are drawn
    uniformly between `low` and `high` of the image's side; centers at 0.5 + N(0, 0.15) of the
    side (as Horama draws them), clamped so every crop lies inside the image.

    The output holds n views of the batch, view by view (all images' first crops, then the
    second ...): the problem averages the objective over the views."""

    n: int = 6
    low: float = 0.05
    high: float = 0.5
    size: int | None = None

    @property
    def views(self) -> int:
        return self.n

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        sides = self.low + torch.rand(self.n, generator=generator) * (self.high - self.low)
        centers = 0.5 + torch.randn(self.n, 2, generator=generator) * 0.15
        half = sides[:, None] / 2
        return sides, torch.minimum(torch.maximum(centers, half), 1 - half)

    def apply(self, x: torch.Tensor, draw: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        sides, centers = draw
        m = x.shape[0]
        out = (self.size, self.size) if self.size else tuple(x.shape[-2:])  # the image's aspect kept
        theta = torch.zeros(self.n, 2, 3, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = sides.to(x.dtype)
        theta[:, :, 2] = (2 * centers - 1).to(x.dtype)  # (x, y) centers in normalized coordinates
        theta = to_device(theta, x.device, x.dtype).repeat_interleave(m, 0)  # view by view
        grid = F.affine_grid(theta, [self.n * m, x.shape[1], *out], align_corners=False)
        return F.grid_sample(
            x.repeat(self.n, 1, 1, 1), grid, mode="bilinear", padding_mode="border", align_corners=False
        )

    def at_size(self, size: int) -> "Crops":
        return Crops(self.n, self.low, self.high, size)

    def describe(self) -> str:
        return f"crops:{self.n}@{_num(self.high)}-{_num(self.low)}"


@dataclass(frozen=True)
class PerImage:
    """Each image of the batch gets its own draw of `inner` (a population's candidates for one
    image slot share it, as common random numbers). The draw is a seed: image i's draw is
    `inner.sample` from a generator seeded with (seed, i)."""

    inner: Any

    @property
    def views(self) -> int:
        return views_of(self.inner)

    def sample(self, generator: torch.Generator) -> int:
        return _seed(generator)

    def apply(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        parts = []
        for i in range(x.shape[0]):
            g = torch.Generator().manual_seed(seed * 1_000_003 + i)
            parts.append(self.inner.apply(x[i : i + 1], self.inner.sample(g)))
        if self.views == 1:
            return torch.cat(parts)
        # keep the output view by view: (views, images) -> flat
        return torch.stack([p.view(self.views, *p.shape[1:]) for p in parts], 1).flatten(0, 1)

    def at_size(self, size: int) -> "PerImage":
        return PerImage(with_output_size(self.inner, size))

    def describe(self) -> str:
        return describe_transforms(self.inner) + ",per-image"


def show_at(x: torch.Tensor, side: int | None) -> torch.Tensor:
    """Images resized to side x side, as the network is shown them with a render size (Lucent's
    upsampling: bilinear with corners aligned; downsampling antialiased); unchanged without one."""
    if side is None or x.shape[-2:] == (side, side):
        return x
    up = x.shape[-1] < side
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=up, antialias=not up)


def views_of(transforms: Any) -> int:
    """How many views of each image a chain outputs (crops make several; everything else one)."""
    if hasattr(transforms, "views"):
        return transforms.views
    n = 1
    for part in getattr(transforms, "transforms", ()):
        n *= views_of(part)
    return n


def with_output_size(transforms: Any, size: int) -> Any:
    """The chain with its crops made at `size` px (the render size): no resize twice."""
    if hasattr(transforms, "at_size"):
        return transforms.at_size(size)
    if isinstance(transforms, Compose):
        return Compose(tuple(with_output_size(t, size) for t in transforms.transforms))
    return transforms


def keeps_size(transforms: Any) -> bool:
    """Whether every draw gives the same output size (needed to draw per image)."""
    if isinstance(transforms, LucentTransforms):
        return transforms.keep_size
    if isinstance(transforms, RandomScale):
        return False
    return all(keeps_size(t) for t in getattr(transforms, "transforms", ()))


def _num(v: float) -> str:
    return f"{v:g}"


def describe_transforms(transforms: Any) -> str:
    """The grammar string of a chain (see fvopt.transforms.grammar); parse(describe(t)) == t."""
    for name, make in TRANSFORM_SETS.items():
        if transforms == make():
            return name
    if hasattr(transforms, "describe"):
        return transforms.describe()
    if isinstance(transforms, Compose):
        return ",".join(describe_transforms(t) for t in transforms.transforms) or "none"
    if isinstance(transforms, Pad):
        return f"pad:{transforms.pad}"
    if isinstance(transforms, Jitter):
        return f"jitter:{transforms.d}"
    if isinstance(transforms, ColorJitter):
        return f"color:{_num(transforms.gain)}/{_num(transforms.offset)}"
    return repr(transforms)  # a user's own transform object: named as Python shows it


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
