"""The parameterization contract: a flat vector per image in, a batch of [0,1] RGB images out."""

from __future__ import annotations

import torch
from torch import nn

# Normalized square root of the ImageNet color covariance (Lucid): rows are RGB, divided by the
# largest column norm (0.4619524) so that decorrelated noise has unit scale.
_COLOR_SQRT_COV = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_CORRELATION = _COLOR_SQRT_COV / _COLOR_SQRT_COV.norm(dim=0).max()


class Parameterization(nn.Module):
    """Maps z of shape (n, dim) to images of shape (n, channels, height, width) in [0,1], differentiably.

    `dim` is the number of free values per image: what a zero-order search has to explore.
    A low-dimensional form keeps a `full` parameterization and can `lift` its vectors into it
    exactly (the same image), so a hybrid can hand a zero-order result to a gradient method.
    """

    name: str = "param"
    dim: int
    size: int  # the image side, or (height, width) when the image is not square (fvopt.io.canvas)
    channels: int = 3  # image channels: 3 is RGB, 1 grayscale, any other count works
    color_source: str = "imagenet"  # the decorrelation used: imagenet, identity, estimated from ...

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of the images it draws."""
        from ..io.canvas import hw

        return hw(self.size)

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n starting vectors (n, dim), drawn only from `generator`: the same seed gives the same start
        for every strategy, so a comparison of strategies starts from the same images."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images (n, 3, size, size) in [0,1] from z (n, dim), differentiably: gradient methods
        backpropagate through it, and the sigmoid/clamp keeps any z a valid image."""
        raise NotImplementedError

    @property
    def full(self) -> "Parameterization":
        """The full parameterization a low-dimensional form lives in (itself when it is full)."""
        return self

    def lift(self, z: torch.Tensor) -> torch.Tensor:
        """The vectors of `self.full` that give exactly the same images as `z`: how a hybrid hands a
        zero-order result to a gradient method without changing the picture."""
        return z

    def project_(self, z: torch.Tensor) -> None:
        """Put z (n, dim) back into its feasible set in place, after a first-order update (a no-op
        here; `raw:clip=true` clips): the classic recipes clip the tensor after each step rather
        than clamp in the forward pass, which would zero the gradient of every value outside."""

    def from_image(self, images: torch.Tensor) -> torch.Tensor | None:
        """The vectors z (n, dim) whose images are `images` (n, C, H, W) in [0,1], or None when this
        parameterization has no exact inverse (`--init` then refuses, naming those that have one)."""
        return None

    def reduced(self) -> "Parameterization":
        """The default low-dimensional form (about a thousand values or fewer), which strategies that
        prefer a low-dimensional space search instead of this one (`strategies.base.search_space`)."""
        return self

    @property
    def device(self) -> torch.device:
        buffers = list(self.buffers())
        return buffers[0].device if buffers else torch.device("cpu")

    def extra_repr(self) -> str:
        return f"{self.name}, size={self.size}, dim={self.dim}"


def to_rgb(x: torch.Tensor, decorrelate: bool, color: torch.Tensor) -> torch.Tensor:
    """Lucid's `to_valid_rgb`: optional color decorrelation, then a sigmoid into [0,1]."""
    if decorrelate:  # a (3x3) @ (3, pixels) matmul: 0.6 ms forward+backward at 224 px on 2 CPU cores, a 1x1 conv2d 5.3
        x = (color @ x.flatten(2)).reshape(x.shape)
    return torch.sigmoid(x)


# Pixels are clamped this far inside (0, 1) before their logit: the round trip stays within 1e-3
# (a quarter of 1/255) and saturated pixels keep a gradient a first-order method can use.
SEED_EPS = 1e-3


def from_rgb(images: torch.Tensor, decorrelate: bool, color: torch.Tensor) -> torch.Tensor:
    """The exact inverse of `to_rgb` (up to SEED_EPS at 0 and 1): logit, then undo the decorrelation."""
    x = torch.logit(images.double().clamp(SEED_EPS, 1 - SEED_EPS))
    if decorrelate:
        x = torch.linalg.solve(color.double(), x.flatten(2)).reshape(x.shape)
    return x.float()


def normal(shape: tuple[int, ...], sd: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * sd


class Subspace(Parameterization):
    """The free coordinates `index` of a full parameterization; the rest stay at `base`."""

    def __init__(self, full: Parameterization, index: torch.Tensor, base: torch.Tensor, name: str) -> None:
        super().__init__()
        self._full = full
        self.register_buffer("index", index.long())
        self.register_buffer("base", base.reshape(-1).float())
        self.dim = int(index.numel())
        self.size = full.size
        self.channels = full.channels
        self.color_source = full.color_source
        self.name = name

    @property
    def full(self) -> Parameterization:
        return self._full

    def lift(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        return self.base.expand(n, -1).scatter(1, self.index.expand(n, -1), z)

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self._full.init(n, generator).to(self.index.device)[:, self.index]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._full(self.lift(z))


def calibrate_sigma(param: Parameterization, z0: torch.Tensor, pixel_rms: float = 0.1, seed: int = 0) -> float:
    """The step size in z whose random samples change the image by `pixel_rms` (RMS, [0,1] units).

    Why: a unit of z means very different images in different parameterizations (a pixel logit,
    a scaled Fourier coefficient, a pyramid level), so zero-order searches take their default
    step size in image units and stay comparable across parameterizations.
    """
    g = torch.Generator().manual_seed(seed)
    z0 = z0[:1].detach().float()
    eps = torch.randn((4, z0.shape[1]), generator=g).to(z0.device)
    probe = 1e-2
    with torch.no_grad():
        base = param(z0)
        change = (param(z0 + probe * eps) - base).pow(2).mean().sqrt()
    return float(probe * pixel_rms / change.clamp_min(1e-12))
