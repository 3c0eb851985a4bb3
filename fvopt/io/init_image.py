"""Your own images: load a photo at the run's size, and start a parameterization from it.

Two uses share this module: `--init photo.png` (the run starts from the photo, through the
parameterization's exact inverse) and the image-seeded targets of `image_targets`
(`invert:LAYER@photo.png`, ...), which compare a visualization with the photo's activations.

A photo is resized so that it covers the run's image (its shorter side scaled to fit, with
antialiasing), then center-cropped: the same rule Lucid's `imgToModelSize` follows. What was done
is stated by `Photo.describe()`, which traces carry. A path is checked where it enters (exists,
is a readable image of 1 or 3 channels, or a `.npy` array of any channel count), before any model
pass; its channel count is checked against the network's before the reference pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FvoptError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
ARRAY_SUFFIXES = (".npy",)
# The parameterizations with an exact inverse from pixels (their full forms, and the low-dimensional
# forms that keep the rest of the photo frozen); named in every refusal.
SEEDABLE = "pixel, raw:clip=true, raw, fft, fft:k=K, pyramid, pyramid:free=F"


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


@dataclass
class Photo:
    """A user's image file: checked when made, decoded once, resized per run size on demand."""

    path: Path
    channels: int = field(init=False)
    original: tuple[int, int] = field(init=False)  # (H, W) of the file
    _pixels: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __init__(self, path: str | Path) -> None:
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise FvoptError(f"image path must be a file name such as photo.png, not {path!r}")
        self.path = Path(str(path).strip()).expanduser()
        self._pixels = None
        if not self.path.is_file():
            where = "is a directory" if self.path.is_dir() else "does not exist"
            raise FvoptError(f"image '{self.path}' {where}: give a PNG/JPEG file (or a .npy array C,H,W in [0,1])")
        suffix = self.path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES + ARRAY_SUFFIXES:
            raise FvoptError(
                f"image '{self.path}' has suffix '{suffix}': use one of {', '.join(IMAGE_SUFFIXES + ARRAY_SUFFIXES)}"
            )
        self._pixels = self._read()
        self.channels = int(self._pixels.shape[0])
        self.original = (int(self._pixels.shape[1]), int(self._pixels.shape[2]))

    def _read(self) -> torch.Tensor:
        """(C, H, W) float32 in [0, 1]."""
        if self.path.suffix.lower() == ".npy":
            try:
                arr = np.load(self.path, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise FvoptError(f"cannot read array '{self.path}': {err}") from err
            arr = arr[None] if arr.ndim == 2 else arr
            if (
                arr.ndim != 3
                or not np.issubdtype(arr.dtype, np.number)
                or not np.isfinite(arr).all()
                or arr.min() < 0
                or arr.max() > 1
            ):
                raise FvoptError(
                    f"array '{self.path}' must be finite numbers in [0, 1] shaped (C, H, W) or (H, W), "
                    f"not {arr.dtype} {arr.shape}"
                )
            return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.path) as img:
                mode = img.mode
                if mode in ("L", "I;16", "I", "F", "1"):
                    arr = np.asarray(img.convert("F"), dtype=np.float32)
                    scale = {"I;16": 65535.0, "I": 65535.0, "F": 1.0}.get(mode, 255.0)
                    arr = (arr / scale)[None]
                elif mode in ("RGB", "P", "YCbCr", "CMYK", "LAB", "HSV"):
                    arr = np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
                else:  # RGBA, LA, PA: an alpha channel fvopt will not silently drop or composite
                    raise FvoptError(
                        f"image '{self.path}' has mode {mode} (with transparency): save it without "
                        "an alpha channel (RGB or grayscale) first"
                    )
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as err:  # a bomb: refused as dream does
            raise FvoptError(f"cannot read image '{self.path}': {err}") from err
        return torch.from_numpy(np.clip(arr, 0, 1).copy())

    def check_channels(self, channels: int, what: str) -> None:
        if self.channels != channels:
            raise FvoptError(
                f"image '{self.path}' has {self.channels} channel{'s' * (self.channels != 1)}, and "
                f"{what} takes {channels}: give a {channels}-channel image"
            )

    def at(self, size: int | tuple[int, int]) -> torch.Tensor:
        """(1, C, H, W) in [0, 1] covering `size`: shorter side scaled to fit (antialiased), center crop."""
        h, w = _hw(size)
        x = self._pixels[None]
        H, W = self.original
        scale = max(h / H, w / W)
        rh, rw = max(h, round(H * scale)), max(w, round(W * scale))
        if (rh, rw) != (H, W):
            x = F.interpolate(x, size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (rh - h) // 2, (rw - w) // 2
        return x[..., top : top + h, left : left + w].clamp(0, 1).contiguous()

    def describe(self, size: int | tuple[int, int]) -> str:
        h, w = _hw(size)
        H, W = self.original
        how = "as it is" if (H, W) == (h, w) else "resized to cover, center-cropped"
        return f"{self.path} ({self.channels}x{H}x{W}) -> {h}x{w} {how}"


def seed_from_image(param, image: torch.Tensor, batch: int):
    """(param', z0): a parameterization and a start (batch, dim) that render `image` exactly.

    Full forms invert the image (`param.from_image`). A low-dimensional form that is a Subspace of
    an invertible one (fft:k=K, pyramid:free=F) is rebased on the photo: its frozen coordinates
    hold the photo's values, so the search moves within the photo's neighbourhood and its start is
    the photo itself. Everything else is refused in one line naming what works.
    """
    from ..params.base import Subspace

    name = getattr(param, "name", type(param).__name__)
    if isinstance(param, Subspace):
        full = param.full
        z = _invert(full, image, name)
        rebased = Subspace(full, param.index, z[0], param.name).to(param.index.device)
        return rebased, z[:, param.index].expand(batch, -1).clone()
    return param, _invert(param, image, name).expand(batch, -1).clone()


def _invert(param, image: torch.Tensor, name: str) -> torch.Tensor:
    inverse = getattr(param, "from_image", None)
    z = inverse(image.to(param.device)) if inverse is not None else None
    if z is None:
        raise FvoptError(
            f"--init needs a parameterization with an exact inverse from pixels, and '{name}' has "
            f"none: use one of {SEEDABLE}"
        )
    return z


def seed_error(z: torch.Tensor, param, image: torch.Tensor) -> float:
    """The largest pixel difference between what z renders and the image: how exact the seed is."""
    with torch.no_grad():
        return float((param(z[:1]) - image.to(z.device)).abs().max())
