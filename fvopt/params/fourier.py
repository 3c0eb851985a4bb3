"""Spectral parameterizations: Lucid's 1/f-scaled FFT, and MaCo's phase-only form."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..options import Option
from .base import COLOR_CORRELATION, Parameterization, Subspace, normal, to_rgb
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

    def reduced(self, k: int = 8) -> Parameterization:
        """Only frequencies up to k free (`fft:k=K`): (2k+1)(k+1)*6 values; the rest are zero."""
        mask = low_frequency_mask(self.size, self.size, k)[None, :, :, None].expand(self.spectrum_shape)
        index = torch.nonzero(mask.reshape(-1))[:, 0]
        sub = Subspace(self, index, torch.zeros(self.dim), f"fft:k={k}")
        return sub.to(self.device)


SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@lru_cache(maxsize=8)
def natural_magnitude(size: int) -> torch.Tensor:
    """Mean Fourier magnitude per RGB channel of scikit-image's color sample photos at `size` px.

    MaCo fixes the magnitude to that of natural images (its authors average ImageNet); the
    photos shipped with scikit-image (astronaut, chelsea, coffee, rocket) stand in for ImageNet here.
    """
    import skimage.data
    import torch.nn.functional as F

    mags = []
    for name in SAMPLE_PHOTOS:
        img = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float()[None] / 255.0
        side = min(img.shape[-2:])
        top, left = (img.shape[-2] - side) // 2, (img.shape[-1] - side) // 2
        img = F.interpolate(img[..., top:top + side, left:left + side], size=(size, size), mode="bilinear",
                            antialias=True, align_corners=False)
        img = img - img.mean(dim=(-2, -1), keepdim=True)
        mags.append(torch.fft.rfft2(img, norm="ortho").abs()[0])
    return torch.stack(mags).mean(0)


class MacoParam(Parameterization):
    """MaCo (Fel et al., 2023): optimize only the Fourier phase; the magnitude is a natural image's.

    image = sigmoid(standardize(irfft2(M * exp(i * phase)))), with M from `natural_magnitude`.
    z holds one phase per bin (3, h, w//2+1); phases start uniform in [-pi, pi].
    """

    name = "maco"

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("magnitude", natural_magnitude(size).clone())
        self.phase_shape = (3, size, size // 2 + 1)
        self.dim = int(np.prod(self.phase_shape))

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return ((torch.rand((n, self.dim), generator=generator) * 2 - 1) * np.pi).to(self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        phase = z.reshape(-1, *self.phase_shape)
        spectrum = torch.polar(self.magnitude.expand_as(phase), phase)
        x = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        x = x - x.mean(dim=(1, 2, 3), keepdim=True)
        x = x / (x.flatten(1).std(1).view(-1, 1, 1, 1) + 1e-5)
        return torch.sigmoid(x)

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
