"""Channel decorrelation for any channel count: Lucid's ImageNet matrix for RGB, the identity
otherwise, or the square root of a channel covariance estimated from the user's reference images.

Why: a parameterization draws values in a decorrelated space and mixes them into channels, so
that independent noise looks like natural colour. Lucid's matrix is the square root of ImageNet's
RGB covariance; for grayscale, multispectral or spectrogram inputs no such constant exists, so
the identity is used unless reference images say how the channels co-vary (`--decorrelate DIR`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import FvoptError
from .base import COLOR_CORRELATION


@dataclass(frozen=True)
class ColorBasis:
    """A (C, C) mixing matrix and where it came from ('imagenet', 'identity', 'estimated from PATH')."""

    matrix: torch.Tensor
    source: str

    @property
    def channels(self) -> int:
        return int(self.matrix.shape[0])


def default_basis(channels: int) -> ColorBasis:
    """Lucid's matrix for 3 channels, the identity for any other count."""
    if channels == 3:
        return ColorBasis(COLOR_CORRELATION.clone(), "imagenet")
    return ColorBasis(torch.eye(channels), "identity")


def basis_for(channels: int, color: "ColorBasis | torch.Tensor | None") -> ColorBasis:
    """The basis a parameterization uses: `color` when given (checked against `channels`), else the default."""
    if color is None:
        return default_basis(channels)
    if isinstance(color, torch.Tensor):
        color = ColorBasis(color.float(), "given")
    if tuple(color.matrix.shape) != (channels, channels):
        raise FvoptError(
            f"decorrelation matrix is {tuple(color.matrix.shape)} ({color.source}) and the images have "
            f"{channels} channels: it must be {channels}x{channels}"
        )
    return color


# A color direction whose spread (square root of its covariance eigenvalue) is below this fraction of
# the largest is taken as absent; natural photos sit near 0.06-0.09 (skimage's chelsea, astronaut, coffee, rocket).
DEGENERATE_SPREAD = 1e-3


def sqrt_covariance(pixels: np.ndarray, what: str = "the reference images") -> torch.Tensor:
    """Lucid's construction for any C: the symmetric square root of the channel covariance of
    `pixels` (N, C), divided by its largest column norm (so decorrelated unit noise has unit scale)."""
    cov = np.cov(pixels.astype(np.float64), rowvar=False).reshape(pixels.shape[1], pixels.shape[1])
    values, vectors = np.linalg.eigh(cov)
    root = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    norm = np.linalg.norm(root, axis=0).max()
    if not np.isfinite(norm) or norm <= 1e-12:
        raise FvoptError(f"{what} have no channel variation: a decorrelation cannot be estimated")
    spread = np.sqrt(np.clip(values, 0, None))
    rank = int((spread >= DEGENERATE_SPREAD * spread.max()).sum())
    if rank < len(values):  # every image drawn through it would lie in `rank` color directions (all gray, ...)
        raise FvoptError(
            f"{what}: their {len(values)} channels vary along only {rank} color "
            f"direction{'s' if rank != 1 else ''} (a degenerate channel covariance, e.g. a grayscale photo read "
            f"as RGB, or too few pixels): every image would keep to {'that' if rank == 1 else 'those'}, gray for "
            "a grayscale photo. Give photos whose channels vary independently, or drop --decorrelate"
        )
    return torch.tensor(root / norm, dtype=torch.float32)


REFERENCE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".npy")


def estimate_basis(source: str | Path, channels: int, max_pixels: int = 200_000) -> ColorBasis:
    """The square root of the channel covariance of reference images: one file or a folder of
    them (PNG/JPEG read with `channels` channels: 1 = grayscale, 3 = RGB; `.npy` arrays (C, H, W)
    or (H, W, C) for any count). Up to `max_pixels` pixels per file, evenly strided."""
    from ..io.images import load_array

    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in REFERENCE_SUFFIXES)
        if not files:
            raise FvoptError(f"decorrelate folder '{path}' holds no images ({', '.join(REFERENCE_SUFFIXES)})")
    elif path.is_file():
        files = [path]
    else:
        raise FvoptError(f"decorrelate source '{path}' does not exist: give an image, a .npy array or a folder of them")
    samples = []
    for file in files:
        image = load_array(file, channels)  # (C, H, W) in [0, 1]
        flat = image.reshape(channels, -1).T
        step = max(1, flat.shape[0] // max_pixels)
        samples.append(flat[::step])
    pixels = np.concatenate(samples)
    if pixels.shape[0] < 2:
        raise FvoptError(f"decorrelate source '{path}' has fewer than 2 pixels")
    return ColorBasis(
        sqrt_covariance(pixels, f"the images of decorrelate source '{path}'"),
        f"estimated from {path} ({len(files)} file{'s' if len(files) != 1 else ''})",
    )


def check_basis_applies(param, basis: ColorBasis | None) -> None:
    """Refuse a decorrelation the parameterization would not use (pixel without decorrelate=true, raw,
    a generator): the run would be the same as without it while the trace named the estimate."""
    if basis is None:
        return
    used = getattr(param, "color_source", None)
    if used != basis.source:
        name = getattr(param, "name", type(param).__name__)
        on = f"{name}{',' if ':' in name else ':'}decorrelate=true"
        hint = f"use --param {on}" if getattr(param, "decorrelate", None) is False else "drop it"
        raise FvoptError(
            f"--decorrelate ({basis.source}) does not apply to param {name}, which "
            f"{'does not decorrelate its colors' if used == 'none' else f'draws its colors itself ({used})'}: "
            f"{hint}, or choose a parameterization that decorrelates (fft, pyramid, maco)"
        )


def color_basis(decorrelate: "str | Path | torch.Tensor | ColorBasis | None", channels: int) -> ColorBasis | None:
    """What `--decorrelate` / `decorrelate=` gives: None (each parameterization's default), a
    file or folder of reference images, or a (C, C) matrix."""
    if decorrelate is None:
        return None
    if isinstance(decorrelate, ColorBasis):
        return basis_for(channels, decorrelate)
    if isinstance(decorrelate, torch.Tensor):
        return basis_for(channels, ColorBasis(decorrelate.float(), "given matrix"))
    if isinstance(decorrelate, (str, Path)):
        return estimate_basis(decorrelate, channels)
    raise FvoptError(
        f"decorrelate must be a file or folder of reference images, or a (C, C) matrix, not "
        f"{type(decorrelate).__name__}"
    )
