"""Gradient processing: Laplacian-pyramid normalization, and tiled gradients for large images.

Image-gradient transforms act on d value / d image before it flows back into the
parameterization (a hook on the rendered image), so each of them works with every
parameterization and every first-order strategy, and they compose like optax transforms.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..runtime.device import cached
from ..errors import FvoptError
from ..config.options import Option, parse_options
from ..registry import Registry

GradTransform = Callable[[torch.Tensor], torch.Tensor]

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
KERNEL_5X5 = torch.outer(_BINOMIAL, _BINOMIAL) / 256.0  # Mordvintsev's lapnorm kernel


def _kernel(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    return cached(("lapnorm kernel", x.dtype), x.device, lambda: KERNEL_5X5.to(x.dtype)).expand(c, 1, 5, 5)


def lap_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur and stride-2 downsample (lo), and what the upsampled lo misses (hi)."""
    k = _kernel(x)
    lo = F.conv2d(F.pad(x, [2, 2, 2, 2], mode="replicate"), k, stride=2, groups=x.shape[1])
    return lo, x - _upsample(lo, x.shape[-2:], k)


def _upsample(lo: torch.Tensor, size, k: torch.Tensor) -> torch.Tensor:
    """Transposed convolution with the kernel x4 (zero insertion + blur), cropped to `size`."""
    up = F.conv_transpose2d(lo, 4 * k, stride=2, padding=2, output_padding=1, groups=lo.shape[1])
    h, w = size
    if up.shape[-2] < h or up.shape[-1] < w:
        up = F.pad(up, [0, max(0, w - up.shape[-1]), 0, max(0, h - up.shape[-2])], mode="replicate")
    return up[..., :h, :w]


def lap_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Bands from coarsest (the low-pass residual) to finest; `levels` high-pass bands."""
    bands = []
    for _ in range(levels):
        if min(x.shape[-2:]) < 2:
            break
        x, hi = lap_split(x)
        bands.append(hi)
    bands.append(x)
    return bands[::-1]


def lap_merge(bands: list[torch.Tensor]) -> torch.Tensor:
    x = bands[0]
    for hi in bands[1:]:
        x = _upsample(x, hi.shape[-2:], _kernel(x)) + hi
    return x


def lap_normalize(g: torch.Tensor, levels: int = 4, eps: float = 1e-10) -> torch.Tensor:
    """Divide each Laplacian band of each image by its RMS, then merge (Mordvintsev's lapnorm).

    Every band gets the same weight, so the low frequencies, whose gradient is weak per pixel,
    are not drowned by the high-frequency noise of plain pixel gradients.
    """
    bands = lap_pyramid(g, levels)
    bands = [b / b.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(eps) for b in bands]
    return lap_merge(bands)


# The TF2 DeepDream tutorial's constant: `gradients /= tf.math.reduce_std(gradients) + 1e-8`.
STD_EPS = 1e-8


def gradient_std(g: torch.Tensor) -> torch.Tensor:
    """std(g) + STD_EPS per image, shaped to divide g, with the population std of tf.math.reduce_std: the one rule
    behind the `normalized` optimizer, `--grad normalize` and DeepDream's `std` step."""
    if g.shape[0] == 1:  # one image: the tutorial's reduction over the whole tensor, so its dreams keep their bits
        return g.std(unbiased=False) + STD_EPS
    return (g.flatten(1).std(dim=1, unbiased=False) + STD_EPS).view(-1, *[1] * (g.dim() - 1))


def normalize_std(g: torch.Tensor) -> torch.Tensor:
    """g / (std(g) + STD_EPS) per image (gradient_std)."""
    return g / gradient_std(g)


def chain(*transforms: GradTransform) -> GradTransform:
    """Apply image-gradient transforms in order, like optax.chain."""

    def apply(g: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            g = t(g)
        return g

    return apply


# Image-gradient methods by name; `fvopt.gradients` entry points of installed packages add to it.
GRADIENT_METHODS: Registry[Callable[..., GradTransform]] = Registry(
    "gradient transform", group="fvopt.gradients", home="fvopt.gradients"
)


def register_gradient(
    name: str, help: str, options: dict[str, Option] | None = None, examples: tuple[str, ...] = ()
) -> Callable:
    """Decorator over `build(**options) -> GradTransform`: the method `name[:key=value,...]`."""
    return GRADIENT_METHODS.register(name, help, options, examples)


@register_gradient(
    "lapnorm",
    "Laplacian-pyramid normalization (Mordvintsev): each band divided by its RMS",
    {"levels": Option(int, low=1, high=16, help="pyramid levels")},
    ("lapnorm", "lapnorm:levels=3"),
)
def _lapnorm(levels: int = 4) -> GradTransform:
    return lambda g: lap_normalize(g, levels)


@register_gradient("normalize", "g / std(g) per image (DeepDream's TF2 tutorial)")
def _normalize() -> GradTransform:
    return normalize_std


def make_image_grad(spec: str) -> GradTransform:
    """`lapnorm`, `lapnorm:levels=4`, `normalize`, or several joined with '+' (applied in order)."""
    if not isinstance(spec, str):
        raise FvoptError(f"grad must be a name such as 'lapnorm', not {type(spec).__name__} {spec!r}")
    parts = []
    items = [s.strip() for s in spec.split("+")]
    if any(not item for item in items) and len(items) > 1:
        raise FvoptError(f"gradient transform '{spec}' has an empty part: join names with '+', e.g. lapnorm+normalize")
    for item in filter(None, items):
        name, _, opts = item.partition(":")
        if name not in GRADIENT_METHODS:
            known = ", ".join(
                f"{n}[:{','.join(f'{k}=N' for k in e.options)}]" if e.options else n
                for n, e in GRADIENT_METHODS.items()
            )
            raise GRADIENT_METHODS.unknown(name, known=known)
        entry = GRADIENT_METHODS[name]
        parts.append(entry.obj(**parse_options(opts, entry.options, f"gradient transform {name}")))
    if not parts:
        raise FvoptError(f"empty gradient transform '{spec}'")
    return chain(*parts)


def tiled_value_and_grad(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    tile: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Value and d value / d image of a large image, one tile at a time.

    `fn` maps a batch of tiles to one value per tile (a spatial mean, like a layer or channel
    objective). The image is rolled by a random offset first (and the gradient rolled back), so
    tile seams move every step and do not print into the image. Memory is bounded by the tile,
    not the image. Returns (area-weighted mean value per image, gradient, number of tiles).
    """
    n, _, h, w = image.shape
    if generator is not None:
        sy = int(torch.randint(h, (1,), generator=generator))
        sx = int(torch.randint(w, (1,), generator=generator))
    else:
        sy = sx = 0
    rolled = torch.roll(image.detach(), shifts=(sy, sx), dims=(2, 3))
    grad = torch.zeros_like(rolled)
    total = torch.zeros(n, device=image.device)
    tiles = 0
    for y0, y1 in tile_bounds(h, tile):
        for x0, x1 in tile_bounds(w, tile):
            piece = rolled[..., y0:y1, x0:x1].clone().requires_grad_(True)
            with torch.enable_grad():
                values = fn(piece)
                (g,) = torch.autograd.grad(values.sum(), piece)
            share = (y1 - y0) * (x1 - x0) / (h * w)
            grad[..., y0:y1, x0:x1] = g * share
            total += values.detach() * share
            tiles += 1
    return total, torch.roll(grad, shifts=(-sy, -sx), dims=(2, 3)), tiles


def tile_bounds(length: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, length) into the fewest tiles of at most `tile`, of nearly equal sizes.

    Equal sizes keep every tile large enough for the network (no 4-pixel sliver at the edge).
    """
    count = -(-length // tile)
    edges = [round(i * length / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))
