"""Image parameterizations by name: `pixel`, `fft`, `pyramid`, `maco`, with options after a colon.

    fft                   Lucid's spectral image (1/f scaling, color decorrelation)
    fft:k=8,decay=0.75    only frequencies up to 8 free (918 values per image); decay exposed
    pyramid:free=2        Laplacian pyramid with only the 2 coarsest levels free
    pixel:k=16            a 16x16 grid of pixels, bilinearly upsampled
    maco:k=8              MaCo, only the low-frequency phases free

Each module registers its builder in `registry.PARAMS` (see `register_param`).
"""
from __future__ import annotations

from . import fourier, pixel, pyramid  # noqa: F401  (fill the registry)
from .base import COLOR_CORRELATION, Parameterization, Subspace
from .fourier import FFTParam, MacoParam, natural_magnitude
from .pixel import ImageParam, PixelParam
from .pyramid import PyramidParam
from .registry import PARAMS, make_param, parse_options, register_param

__all__ = [
    "COLOR_CORRELATION", "FFTParam", "ImageParam", "MacoParam", "PARAMS", "Parameterization", "PixelParam",
    "PyramidParam", "Subspace", "make_param", "natural_magnitude", "parse_options", "register_param",
]
