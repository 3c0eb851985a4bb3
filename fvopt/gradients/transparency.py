"""MaCo's transparency (attribution) maps: where in the image the objective's gradient was large.

Fel et al. (2023) accumulate |d objective / d image| over the optimization and show the image
with that map as its alpha channel, so regions the unit never cared about fade out. Here the
accumulator is a gradient hook on the rendered image: it composes with every parameterization and
with gradient processing (it sees the raw gradient, before lapnorm changes it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

ImageGradHook = Callable[[torch.Tensor], torch.Tensor]


class TransparencyAccumulator:
    """An image-gradient hook that adds |gradient| per pixel and passes the gradient on (through
    `inner`, the gradient processing, when there is one)."""

    def __init__(self, inner: ImageGradHook | None = None) -> None:
        self.inner = inner
        self.total: torch.Tensor | None = None

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        g = grad.detach().abs()
        self.total = g if self.total is None or self.total.shape != g.shape else self.total + g
        return grad if self.inner is None else self.inner(grad)

    def maps(self) -> torch.Tensor:
        """(n, 1, h, w) in [0, 1]: the accumulated |gradient| summed over colors, divided by each
        image's largest value (all zeros when no gradient was ever seen)."""
        if self.total is None:
            raise ValueError("no gradient reached the image: transparency maps need a gradient method")
        m = self.total.sum(1, keepdim=True)
        return m / m.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)


def save_transparency(images: torch.Tensor, maps: torch.Tensor, path: str | Path) -> list[Path]:
    """The image with the map as its alpha channel at `path` (an RGBA PNG for one image; for a
    batch, a grid of the images faded into white by their maps), and the map alone in gray beside
    it (`NAME-map.png`)."""
    from PIL import Image

    from ..io.atomic import atomic_path
    from ..errors import FvoptError
    from ..io.images import save_images, to_uint8

    path = Path(path)
    images, maps = images.detach().cpu().float().clamp(0, 1), maps.detach().cpu().float()
    if images.shape[0] == 1:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                Image.fromarray(to_uint8(torch.cat([images, maps], 1))[0], "RGBA").save(tmp)
        except (OSError, ValueError) as err:
            raise FvoptError(f"cannot write image '{path}': {err}") from err
    else:
        save_images(images * maps + (1 - maps), path)
    return [path, save_images(maps.expand(-1, 3, -1, -1), path.with_name(path.stem + "-map" + path.suffix))]
