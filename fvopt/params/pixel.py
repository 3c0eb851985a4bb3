"""Pixels: the plain parameterization, and a coarse grid as its low-dimensional form."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..io.canvas import hw
from ..config.options import Option
from .base import Parameterization, from_rgb, normal, to_rgb
from .color import ColorBasis, basis_for
from .registry import register_param


class PixelParam(Parameterization):
    """One logit per pixel and channel on a `grid` x `grid` lattice, upsampled to `size` (a side or
    (height, width)); `channels` channels, decorrelated by `color` (default: Lucid's for RGB, the
    identity otherwise) when `decorrelate`.

    With `grid == size` this is the full pixel parameterization. Values start at mid-gray plus
    small noise (sd 0.01 in logit space), as the classic recipes found necessary.
    """

    name = "pixel"

    def __init__(
        self,
        size: int | tuple[int, int],
        grid: int | None = None,
        decorrelate: bool = False,
        sd: float = 0.01,
        init: str = "gray",
        channels: int = 3,
        color: ColorBasis | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        self.grid = grid or size
        self.grid_hw = hw(self.grid)
        self.channels = channels
        self.basis = basis_for(channels, color)
        self.decorrelate = decorrelate
        self.color_source = self.basis.source if decorrelate else "none"  # the trace names what ran
        self.sd = sd
        if init not in ("gray", "uniform"):
            raise ValueError(f"pixel init must be 'gray' or 'uniform', not '{init}'")
        self.init_mode = init
        self.dim = channels * self.grid_hw[0] * self.grid_hw[1]
        self.register_buffer("color", self.basis.matrix.clone())
        if self.grid != size:
            self.name = f"pixel:k={self.grid}"

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.init_mode == "uniform":  # uniform noise images in [0.05, 0.95], as logits
            u = torch.rand((n, self.dim), generator=generator) * 0.9 + 0.05
            return torch.logit(u).to(self.device)
        return normal((n, self.dim), self.sd, generator).to(self.device)

    def _logits(self, z: torch.Tensor) -> torch.Tensor:
        x = z.view(-1, self.channels, *self.grid_hw)
        if self.grid != self.size:
            x = F.interpolate(x, size=self.image_hw, mode="bilinear", align_corners=False)
        return x

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return to_rgb(self._logits(z), self.decorrelate, self.color)

    def from_image(self, images: torch.Tensor) -> torch.Tensor | None:
        """The logits of the photo (full grid only: a coarse grid cannot hold it)."""
        if self.grid != self.size:
            return None
        return from_rgb(images, self.decorrelate, self.color).reshape(images.shape[0], -1)

    @property
    def full(self) -> Parameterization:
        if self.grid == self.size:
            return self
        return PixelParam(self.size, None, self.decorrelate, self.sd, self.init_mode, self.channels, self.basis).to(
            self.device
        )

    def lift(self, z: torch.Tensor) -> torch.Tensor:
        return self._logits(z).reshape(z.shape[0], -1)

    def reduced(self) -> Parameterization:
        return (
            self
            if self.grid != self.size
            else PixelParam(
                self.size, min(16, *self.image_hw), self.decorrelate, self.sd, self.init_mode, self.channels, self.basis
            ).to(self.device)
        )


class ImageParam(Parameterization):
    """A given photo, pixel for pixel: z is the image itself (DeepDream's parameterization).

    No sigmoid: values move freely and the caller clips them to [0,1] after each step, as the
    classic DeepDream loop does.
    """

    name = "image"

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"ImageParam needs one image (1, C, H, W), not {tuple(image.shape)}")
        self.register_buffer("image", image.detach().float().clone())
        self.channels = int(image.shape[1])
        self.height, self.width = image.shape[-2:]
        self.size = self.height if self.height == self.width else (self.height, self.width)
        self.dim = self.channels * self.height * self.width

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.image.reshape(1, -1).expand(n, -1).clone()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, self.channels, self.height, self.width)


SD = Option(float, low=0, help="init noise sd")


@register_param(
    "pixel",
    "one sigmoid logit per pixel and color; pixel:k=G is a GxG grid, upsampled",
    {"k": Option(int, low=1), "decorrelate": Option(bool), "sd": SD, "init": Option(str, choices=("gray", "uniform"))},
    ("pixel", "pixel:k=8", "pixel:init=uniform"),
)
def _build_pixel(
    size: int | tuple[int, int], k: int | None = None, *, channels: int = 3, color: ColorBasis | None = None, **options
) -> PixelParam:
    if k is not None and not 1 <= k <= min(hw(size)):
        raise ValueError(f"pixel grid k must be 1..{min(hw(size))}, not {k}")
    return PixelParam(size, grid=k, channels=channels, color=color, **options)
