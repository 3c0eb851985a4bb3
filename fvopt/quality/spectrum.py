"""Spectral slope: how an image's power falls with spatial frequency.

The power spectrum of natural photographs falls roughly as 1/f^2 (amplitude as 1/f; Field 1987,
van der Schaaf & van Hateren 1996): a power-law exponent near -2. White noise is flat (near 0);
blurry, near-constant images fall faster (below -3). The exponent is fitted by least squares in
log-log coordinates to the radially averaged power of the luminance, mean removed, under a Hann
window (so the image's borders do not add a spurious 1/f^2 cross), over radial frequencies from 2
cycles per image to 0.4 cycles per pixel (the very lowest bins are few and the highest are shaped
by resampling filters).
"""

from __future__ import annotations

import numpy as np
import torch

LUMA = (0.299, 0.587, 0.114)
LOWEST_BIN = 2  # cycles per image: the first radial frequency fitted
HIGHEST = 0.4  # cycles per pixel: the last radial frequency fitted
FEWEST_BINS = 3  # a line through fewer points is no fit


def fitted_bins(height: int, width: int) -> int:
    """How many radial frequencies the slope of an image of this size is fitted over (NaN below 3)."""
    return max(0, int(HIGHEST / (1.0 / max(height, width))) - LOWEST_BIN + 1)  # as spectral_slopes bins them


def too_small_for_a_slope(height: int, width: int) -> str:
    """Why an image of this size has no spectral slope ('' when it has one): below 10 px on its longer
    side, fewer than 3 frequencies lie between 2 cycles per image and 0.4 cycles per pixel."""
    if fitted_bins(height, width) >= FEWEST_BINS:
        return ""
    need = next(side for side in range(1, 100) if fitted_bins(side, side) >= FEWEST_BINS)
    return (
        f"images of {height}x{width} px are too small for a spectral slope (it is fitted over the frequencies "
        f"from {LOWEST_BIN} cycles per image to {HIGHEST} cycles per pixel: {FEWEST_BINS} or more need {need} px "
        "on the longer side)"
    )


def spectral_slopes(images: torch.Tensor) -> torch.Tensor:
    """(n,) fitted exponent of the radially averaged power spectrum of each image; NaN for a constant image."""
    x = images.detach().float().cpu()
    if x.dim() == 3:
        x = x[None]
    n, _, h, w = x.shape
    lum = (x[:, :3] * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1) if x.shape[1] >= 3 else x[:, 0]
    lum = lum - lum.mean(dim=(-2, -1), keepdim=True)
    window = torch.outer(torch.hann_window(h, periodic=False), torch.hann_window(w, periodic=False))
    power = torch.fft.fft2(lum * window).abs().pow(2).numpy()
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fy**2 + fx**2)  # cycles per pixel
    step = 1.0 / max(h, w)
    bins = np.round(radius / step).astype(int)
    lo, hi = LOWEST_BIN, int(HIGHEST / step)
    keep = (bins >= lo) & (bins <= hi)
    counts = np.bincount(bins[keep], minlength=hi + 1)[lo : hi + 1]
    freqs = np.arange(lo, hi + 1) * step
    out = []
    for p in power:
        sums = np.bincount(bins[keep], weights=p[keep], minlength=hi + 1)[lo : hi + 1]
        mean = sums / np.maximum(counts, 1)
        ok = (counts > 0) & (mean > 1e-20)
        if ok.sum() < FEWEST_BINS:
            out.append(float("nan"))
            continue
        slope = np.polyfit(np.log(freqs[ok]), np.log(mean[ok]), 1)[0]
        out.append(float(slope))
    return torch.tensor(out, dtype=torch.float32)
