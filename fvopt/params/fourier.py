"""Spectral parameterizations: Lucid's 1/f-scaled FFT, and MaCo's phase-only form."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..io.canvas import hw
from ..config.options import Option
from .base import COLOR_CORRELATION, Parameterization, Subspace, from_rgb, normal, to_rgb
from .color import ColorBasis, basis_for
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
        rows[h - k :] = True
    cols = torch.zeros(w // 2 + 1, dtype=torch.bool)
    cols[: k + 1] = True
    return rows[:, None] & cols[None, :]


class FFTParam(Parameterization):
    """Lucid's spectral image: a half-plane spectrum scaled by 1/f^decay, inverse FFT, decorrelate, sigmoid.

    Constants follow Lucid and Lucent exactly: noise sd 0.01, scale 1 / max(f, 1/max(h, w))^decay,
    `irfft2(norm="ortho")`, image / 4. z holds (C, h, w//2+1, re/im) per image; `size` is a side or
    (h, w); C = `channels`, decorrelated by `color` (Lucid's for RGB, else the identity by default).
    """

    name = "fft"

    def __init__(
        self,
        size: int | tuple[int, int],
        decay: float = 1.0,
        decorrelate: bool = True,
        sd: float = 0.01,
        channels: int = 3,
        color: ColorBasis | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        self.decay = decay
        self.decorrelate = decorrelate
        self.sd = sd
        self.channels = channels
        self.basis = basis_for(channels, color)
        self.color_source = self.basis.source
        h, w = hw(size)
        freqs = rfft2d_freqs(h, w)
        scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("color", self.basis.matrix.clone())
        self.spectrum_shape = (channels, h, w // 2 + 1, 2)
        self.dim = int(np.prod(self.spectrum_shape))

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return normal((n, self.dim), self.sd, generator).to(self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex(z.reshape(-1, *self.spectrum_shape).contiguous())
        x = torch.fft.irfft2(spectrum * self.scale, s=self.image_hw, norm="ortho") / 4.0
        return to_rgb(x, self.decorrelate, self.color)

    def from_image(self, images: torch.Tensor) -> torch.Tensor:
        """The spectrum of the photo's logits, divided by the 1/f scale: irfft2 of rfft2 is exact for a
        real image (its half-plane holds every value the inverse reads), so the round trip is exact."""
        x = from_rgb(images, self.decorrelate, self.color).double() * 4.0
        spectrum = torch.fft.rfft2(x, norm="ortho") / self.scale.double()
        return torch.view_as_real(spectrum).float().reshape(images.shape[0], -1)

    def reduced(self, k: int = 8) -> Parameterization:
        """Only frequencies up to k free (`fft:k=K`): (2k+1)(k+1)*6 values; the rest are zero."""
        mask = low_frequency_mask(*self.image_hw, k)[None, :, :, None].expand(self.spectrum_shape)
        index = torch.nonzero(mask.reshape(-1))[:, 0]
        sub = Subspace(self, index, torch.zeros(self.dim), f"fft:k={k}")
        return sub.to(self.device)


SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@lru_cache(maxsize=8)
def natural_magnitude(size: int | tuple[int, int], channels: int = 3) -> torch.Tensor:
    """Mean Fourier amplitude per channel of natural photos in the decorrelated color space, at
    `size` px: the magnitude MaCo keeps fixed.

    MaCo's authors average ImageNet in the decorrelated color space (Horama downloads that
    spectrum, `imagenet_decorrelated.npy`); nothing can be downloaded here, so the same estimate is
    made from the color photos shipped with scikit-image (astronaut, chelsea, coffee, rocket):
    center square, resized with antialiasing, mean removed, colors decorrelated with the inverse of
    the color matrix, amplitude of `rfft2`. What this changes is measured in docs/recipes.md.
    A non-square size crops the photos' centers to its aspect ratio; for other than 3 channels
    (no colour statistics exist for them) every channel gets the luminance spectrum of the same
    photos.
    """
    import skimage.data
    import torch.nn.functional as F

    decorrelate = torch.linalg.inv(COLOR_CORRELATION)
    h, w = hw(size)
    mags = []
    for name in SAMPLE_PHOTOS:
        img = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float()[None] / 255.0
        ph, pw = img.shape[-2:]
        scale = min(ph / h, pw / w)  # the largest window of the target's aspect ratio
        ch, cw = int(round(h * scale)), int(round(w * scale))
        top, left = (ph - ch) // 2, (pw - cw) // 2
        img = F.interpolate(
            img[..., top : top + ch, left : left + cw],
            size=(h, w),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[0]
        img = img - img.mean(dim=(-2, -1), keepdim=True)
        if channels == 3:
            img = (decorrelate @ img.flatten(1)).reshape(img.shape)
        else:  # luminance (ITU-R 601), the same spectrum for every channel
            img = (torch.tensor([0.299, 0.587, 0.114]) @ img.flatten(1)).reshape(1, h, w).expand(channels, h, w)
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

    def __init__(self, size: int | tuple[int, int], channels: int = 3, color: ColorBasis | None = None) -> None:
        super().__init__()
        self.size = size
        self.channels = channels
        self.basis = basis_for(channels, color)
        self.color_source = self.basis.source
        h, w = hw(size)
        self.register_buffer("magnitude", natural_magnitude(size, channels).clone())
        self.register_buffer("color", self.basis.matrix.clone())
        self.phase_shape = (channels, h, w // 2 + 1)
        self.dim = int(np.prod(self.phase_shape))

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return normal((n, self.dim), 1.0, generator).to(self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        phase = _standardize(z.reshape(-1, *self.phase_shape))
        spectrum = torch.polar(self.magnitude.expand_as(phase), phase)
        x = _standardize(torch.fft.irfft2(spectrum, s=self.image_hw))
        return to_rgb(x, True, self.color)

    def reduced(self, k: int = 8) -> Parameterization:
        """Only the phases up to frequency k free (`maco:k=K`); the others stay at a fixed random draw."""
        mask = low_frequency_mask(*self.image_hw, k)[None].expand(self.phase_shape)
        index = torch.nonzero(mask.reshape(-1))[:, 0]
        base = self.init(1, torch.Generator().manual_seed(0))[0].cpu()
        return Subspace(self, index, base, f"maco:k={k}").to(self.device)


def _cut_off(k: int | None, size: int | tuple[int, int], what: str) -> None:
    side = min(hw(size))
    if k is not None and not 0 <= k <= side // 2:
        raise ValueError(f"{what} cut-off k must be 0..{side // 2} for {side} px, not {k}")


@register_param(
    "fft",
    "Lucid's spectral image: 1/f^decay scaling, color decorrelation; fft:k=K keeps K frequencies",
    {
        "k": Option(int, low=0),
        "decay": Option(float, low=0, high=10),
        "decorrelate": Option(bool),
        "sd": Option(float, low=0),
    },
    ("fft", "fft:k=4", "fft:decay=0.75,decorrelate=false"),
)
def _build_fft(
    size: int | tuple[int, int], k: int | None = None, *, channels: int = 3, color: ColorBasis | None = None, **options
) -> Parameterization:
    _cut_off(k, size, "fft")
    full = FFTParam(size, channels=channels, color=color, **options)
    return full if k is None else full.reduced(k)


@register_param(
    "maco",
    "MaCo: only the Fourier phase is free, the magnitude is a natural image's; maco:k=K",
    {"k": Option(int, low=0)},
    ("maco", "maco:k=4"),
)
def _build_maco(
    size: int | tuple[int, int], k: int | None = None, *, channels: int = 3, color: ColorBasis | None = None
) -> Parameterization:
    _cut_off(k, size, "maco")
    full = MacoParam(size, channels, color)
    return full if k is None else full.reduced(k)
