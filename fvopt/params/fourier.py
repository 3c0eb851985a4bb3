"""Spectral parameterizations: Lucid's 1/f-scaled FFT, and MaCo's phase-only form."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..options import Option
from .base import COLOR_CORRELATION, Parameterization, Subspace, from_rgb, normal, to_rgb
from .registry import register_param


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """Frequency magnitude of every bin of a real 2-D FFT of an h x w image (numpy fftfreq)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def low_frequency_mask(h: int, w: int, k: int) -> torch.Tensor:
    """Bins whose row and column frequency indices are at most k: (2k+1) x (k+1) of the half-plane."""
    rows = torch.zeros(h, dtype=torch.bool)
    rows[: k + 1] = True
    if k > 0:
        rows[h - k:] = True
    cols = torch.zeros(w // 2 + 1, dtype=torch.bool)
    cols[: k + 1] = True
    return rows[:, None] & cols[None, :]


class FFTParam(Parameterization):
    """Lucid's spectral image: a half-plane spectrum scaled by 1/f^decay, inverse FFT, decorrelate, sigmoid.

    Constants follow Lucid and Lucent exactly: noise sd 0.01, scale 1 / max(f, 1/max(h, w))^decay,
    `irfft2(norm="ortho")`, image / 4. z holds (3, h, w//2+1, re/im) per image.
    """

    name = "fft"

    def __init__(self, size: int, decay: float = 1.0, decorrelate: bool = True, sd: float = 0.01) -> None:
        super().__init__()
        self.size = size
        self.decay = decay
        self.decorrelate = decorrelate
        self.sd = sd
        freqs = rfft2d_freqs(size, size)
        scale = 1.0 / np.maximum(freqs, 1.0 / size) ** decay
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("color", COLOR_CORRELATION.clone())
        self.spectrum_shape = (3, size, size // 2 + 1, 2)
        self.dim = int(np.prod(self.spectrum_shape))

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return normal((n, self.dim), self.sd, generator).to(self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex(z.reshape(-1, *self.spectrum_shape).contiguous())
        x = torch.fft.irfft2(spectrum * self.scale, s=(self.size, self.size), norm="ortho") / 4.0
        return to_rgb(x, self.decorrelate, self.color)

    def from_image(self, images: torch.Tensor) -> torch.Tensor:
        """The spectrum of the photo's logits, divided by the 1/f scale: irfft2 of rfft2 is exact for a
        real image (its half-plane holds every value the inverse reads), so the round trip is exact."""
        x = from_rgb(images, self.decorrelate, self.color).double() * 4.0
        spectrum = torch.fft.rfft2(x, norm="ortho") / self.scale.double()
        return torch.view_as_real(spectrum).float().reshape(images.shape[0], -1)

    def reduced(self, k: int = 8) -> Parameterization:
        """Only frequencies up to k free (`fft:k=K`): (2k+1)(k+1)*6 values; the rest are zero."""
        mask = low_frequency_mask(self.size, self.size, k)[None, :, :, None].expand(self.spectrum_shape)
        index = torch.nonzero(mask.reshape(-1))[:, 0]
        sub = Subspace(self, index, torch.zeros(self.dim), f"fft:k={k}")
        return sub.to(self.device)


SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@lru_cache(maxsize=8)
def natural_magnitude(size: int) -> torch.Tensor:
    """Mean Fourier amplitude per channel of natural photos in the decorrelated color space, at
    `size` px: the magnitude MaCo keeps fixed.

    MaCo's authors average ImageNet in the decorrelated color space (Horama downloads that
    spectrum, `imagenet_decorrelated.npy`); nothing can be downloaded here, so the same estimate is
    made from the color photos shipped with scikit-image (astronaut, chelsea, coffee, rocket):
    center square, resized with antialiasing, mean removed, colors decorrelated with the inverse of
    the color matrix, amplitude of `rfft2`. What this changes is measured in docs/recipes.md.
    """
    import skimage.data
    import torch.nn.functional as F

    decorrelate = torch.linalg.inv(COLOR_CORRELATION)
    mags = []
    for name in SAMPLE_PHOTOS:
        img = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float()[None] / 255.0
        side = min(img.shape[-2:])
        top, left = (img.shape[-2] - side) // 2, (img.shape[-1] - side) // 2
        img = F.interpolate(img[..., top:top + side, left:left + side], size=(size, size), mode="bilinear",
                            antialias=True, align_corners=False)[0]
        img = img - img.mean(dim=(-2, -1), keepdim=True)
        img = (decorrelate @ img.flatten(1)).reshape(img.shape)
        mags.append(torch.fft.rfft2(img, norm="ortho").abs())
    return torch.stack(mags).mean(0)


def _standardize(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation over each image's values (Horama's `standardize`, per
    image instead of over the whole batch, so an image does not depend on its neighbours)."""
    flat = x.flatten(1)
    return ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-4)).view_as(x)


class MacoParam(Parameterization):
    """MaCo as published (Fel et al., NeurIPS 2023; Horama's `maco_preconditioner`): only the
    Fourier phase is optimized, the magnitude stays a natural image's.

    image = sigmoid(recorrelate(standardize(irfft2(M * exp(i * standardize(phase)))))), with M
    from `natural_magnitude` (decorrelated color space). Phases start N(0, 1), as in Horama.
    One difference: Horama scales the sigmoid to (-2.5, 2.5) in the network's normalized input
    space; fvopt images live in [0, 1] (the network normalizes them), which is close to that range
    for ImageNet statistics ([-0.08, 1.06] in pixel units) and keeps images saveable as they are.
    """

    name = "maco"

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("magnitude", natural_magnitude(size).clone())
        self.register_buffer("color", COLOR_CORRELATION.clone())
        self.phase_shape = (3, size, size // 2 + 1)
        self.dim = int(np.prod(self.phase_shape))

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return normal((n, self.dim), 1.0, generator).to(self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        phase = _standardize(z.reshape(-1, *self.phase_shape))
        spectrum = torch.polar(self.magnitude.expand_as(phase), phase)
        x = _standardize(torch.fft.irfft2(spectrum, s=(self.size, self.size)))
        return to_rgb(x, True, self.color)

    def reduced(self, k: int = 8) -> Parameterization:
        """Only the phases up to frequency k free (`maco:k=K`); the others stay at a fixed random draw."""
        mask = low_frequency_mask(self.size, self.size, k)[None].expand(self.phase_shape)
        index = torch.nonzero(mask.reshape(-1))[:, 0]
        base = self.init(1, torch.Generator().manual_seed(0))[0].cpu()
        return Subspace(self, index, base, f"maco:k={k}").to(self.device)


def _cut_off(k: int | None, size: int, what: str) -> None:
    if k is not None and not 0 <= k <= size // 2:
        raise ValueError(f"{what} cut-off k must be 0..{size // 2} for {size} px, not {k}")


@register_param("fft", "Lucid's spectral image: 1/f^decay scaling, color decorrelation; fft:k=K keeps K frequencies",
                {"k": Option(int, low=0), "decay": Option(float, low=0, high=10), "decorrelate": Option(bool),
                 "sd": Option(float, low=0)}, ("fft", "fft:k=4", "fft:decay=0.75,decorrelate=false"))
def _build_fft(size: int, k: int | None = None, **options) -> Parameterization:
    _cut_off(k, size, "fft")
    full = FFTParam(size, **options)
    return full if k is None else full.reduced(k)


@register_param("maco", "MaCo: only the Fourier phase is free, the magnitude is a natural image's; maco:k=K",
                {"k": Option(int, low=0)}, ("maco", "maco:k=4"))
def _build_maco(size: int, k: int | None = None) -> Parameterization:
    _cut_off(k, size, "maco")
    full = MacoParam(size)
    return full if k is None else full.reduced(k)
