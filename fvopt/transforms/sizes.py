"""The sizes a transform chain can produce, known before any work.

Why: pad grows the image, jitter shrinks it, a random scale does both. Unchecked, `jitter:100` on a
64 px image ended in a traceback mid-run, `jitter:63` showed the network a 1 px image and exited 0
although the network's stated minimum is 32 px, and `pad:4096` ran out of memory (a segfault
after 70 s) because the memory estimate looked at the image, not at what the chain makes of it.
`output_range` walks the chain over every draw's extreme and returns the smallest and largest
(height, width) it can output, and the largest side it makes on the way, so the problem refuses
a chain the network cannot take, and the memory estimate uses the size the network will see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import FvoptError


@dataclass(frozen=True)
class SizeRange:
    smallest: tuple[int, int]  # (height, width) of the smallest output any draw gives
    largest: tuple[int, int]  # ... and of the largest
    peak: int  # the largest side any step of the chain makes (memory of the transformed images)


def _scaled(hw: tuple[int, int], factor: float) -> tuple[int, int]:
    return tuple(max(1, int(round(s * factor))) for s in hw)  # type: ignore[return-value]


def output_range(transforms: Any, hw: tuple[int, int]) -> SizeRange:
    """The (height, width) range `transforms` outputs for an input of `hw`, over all draws."""
    from .ops import Compose, Crops, Jitter, LucentTransforms, Pad, PerImage, RandomScale

    def walk(t: Any, lo: tuple[int, int], hi: tuple[int, int], peak: int):
        if isinstance(t, Pad):
            lo, hi = (lo[0] + 2 * t.pad, lo[1] + 2 * t.pad), (hi[0] + 2 * t.pad, hi[1] + 2 * t.pad)
        elif isinstance(t, Jitter):
            lo, hi = (lo[0] - t.d, lo[1] - t.d), (hi[0] - t.d, hi[1] - t.d)
        elif isinstance(t, RandomScale):
            lo, hi = _scaled(lo, min(t.scales)), _scaled(hi, max(t.scales))
        elif isinstance(t, LucentTransforms):
            if t.keep_size:
                grown = walk(Compose(t.transforms), lo, hi, peak)
                return lo, hi, max(grown[2], peak)
            return walk(Compose(t.transforms), lo, hi, peak)
        elif isinstance(t, Crops):
            if t.size:
                lo = hi = (t.size, t.size)
        elif isinstance(t, PerImage):
            return walk(t.inner, lo, hi, peak)
        elif isinstance(t, Compose):
            for part in t.transforms:
                lo, hi, peak = walk(part, lo, hi, peak)
                if min(lo) < 1:
                    return lo, hi, peak
            return lo, hi, peak
        return lo, hi, max(peak, *hi)

    lo, hi, peak = walk(transforms, tuple(hw), tuple(hw), max(hw))
    return SizeRange(lo, hi, peak)


def check_transform_sizes(
    transforms: Any, hw: tuple[int, int], min_size: int, model_name: str, described: str, render: int | None = None
) -> SizeRange:
    """Refuse (FvoptError, one line) a chain whose output the network cannot take: an image
    shrunk below the network's minimum (or to nothing), before any model pass. `described` is the
    chain in words, quoted as the message should show it."""
    sizes = output_range(transforms, hw)
    image = f"{hw[1]}x{hw[0]}" if hw[0] != hw[1] else f"{hw[0]}"
    if min(sizes.smallest) < 1:
        raise FvoptError(
            f"transforms {described} shrink a {image} px image to nothing (jitter takes its amount off "
            f"each side's length): use smaller amounts, or a larger image"
        )
    if render is None and min(sizes.smallest) < min_size:
        raise FvoptError(
            f"transforms {described} can shrink a {image} px image to {min(sizes.smallest)} px, below "
            f"{model_name}'s minimum input of {min_size} px: use smaller amounts, a larger image, or a "
            f"render size (--render-size)"
        )
    return sizes
