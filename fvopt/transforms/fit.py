"""Transforms made for the images at hand: their size (pixel amounts scaled for small images) and
their channel count (colour jitter per channel).

Pixel amounts (pad, jitter) were chosen for images of 128 px and more (Lucent's default image is
128 px, shown at 224); on a smaller image they are scaled by side / 128 (the shorter side),
rounded, at least 1 px, so a 28 px MNIST image is jittered by 2 px, not 8 (a third of its width).
Relative amounts (scale, rotation, translation as a share of the side, crops, noise) need no
scaling. At 128 px and more with 3 channels nothing changes, so existing runs keep their draws.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import FvoptError
from .ops import (
    ColorAdjust,
    ColorJitter,
    Compose,
    Jitter,
    LucentTransforms,
    Pad,
    PerImage,
    describe_transforms,
)

SCALE_FROM = 128


def pixel_scale(size: tuple[int, int]) -> float:
    """The factor pixel amounts are multiplied by for images of `size` (height, width): 1 from 128 px."""
    return min(1.0, min(size) / SCALE_FROM)


def _px(value: int, scale: float) -> int:
    return value if scale >= 1 or value == 0 else max(1, int(round(value * scale)))


def fit_transforms(transforms: Any, size: tuple[int, int], channels: int) -> Any:
    """The chain made for images of `size` (height, width) with `channels` channels; torchvision's
    colour adjustment (saturation) is refused for other than 1 or 3 channels, in one line."""
    scale = pixel_scale(size)
    if isinstance(transforms, LucentTransforms):
        if scale >= 1:
            return transforms
        return replace(
            transforms,
            pad=_px(transforms.pad, scale),
            jitter=_px(transforms.jitter, scale),
            jitter_after=_px(transforms.jitter_after, scale),
        )
    if isinstance(transforms, Pad):
        return Pad(_px(transforms.pad, scale), transforms.fill)
    if isinstance(transforms, Jitter):
        return Jitter(_px(transforms.d, scale))
    if isinstance(transforms, ColorJitter):
        return transforms if transforms.channels == channels else replace(transforms, channels=channels)
    if isinstance(transforms, ColorAdjust) and channels not in (1, 3):
        raise FvoptError(
            f"colorjitter (torchvision's brightness/contrast/saturation) works on 1 or 3 channels, and the "
            f"images have {channels}: use color:G/O (a gain and offset per channel) instead"
        )
    if isinstance(transforms, Compose):
        return Compose(tuple(fit_transforms(t, size, channels) for t in transforms.transforms))
    if isinstance(transforms, PerImage):
        return PerImage(fit_transforms(transforms.inner, size, channels))
    return transforms


def describe_fit(original: Any, fitted: Any, size: tuple[int, int]) -> str | None:
    """What `fit_transforms` changed, in words for a trace (None when nothing)."""
    if original == fitted:
        return None
    if isinstance(fitted, LucentTransforms):
        what = f"pad {fitted.pad}, jitter {fitted.jitter}, jitter {fitted.jitter_after} px"
    else:
        what = describe_transforms(fitted)
    return f"pixel amounts x{pixel_scale(size):.3g} for {size[0]}x{size[1]} px (below {SCALE_FROM} px): {what}"
