"""Image parameterizations by name: `pixel`, `fft`, `pyramid`, `maco`, `raw`, with options after a colon.

    fft                   Lucid's spectral image (1/f scaling, color decorrelation)
    fft:k=8,decay=0.75    only frequencies up to 8 free (918 values per image); decay exposed
    pyramid:free=2        Laplacian pyramid with only the 2 coarsest levels free
    pixel:k=16            a 16x16 grid of pixels, bilinearly upsampled
    maco:k=8              MaCo, only the low-frequency phases free
    raw:clip=true         the image itself (the classic raw-pixel recipe), clipped to [0,1]
    cppn                  Lucid's CPPN: a network of the pixel coordinates (its weights are z)
    generator:gen.py:make your generator's latent code (XDream / Wang & Ponce), dim=N,range=R

Each module registers its builder in `registry.PARAMS` (see `register_param`).
"""

from __future__ import annotations

from . import cppn, fourier, generator, pixel, pyramid, raw  # noqa: F401  (fill the registry)
from .base import COLOR_CORRELATION, Parameterization, Subspace
from .fourier import FFTParam, MacoParam, natural_magnitude
from .pixel import ImageParam, PixelParam
from .pyramid import PyramidParam
from .raw import RawParam
from .registry import DEFAULT_PARAM, PARAMS, make_param, parse_options, register_param

__all__ = [
    "COLOR_CORRELATION",
    "DEFAULT_PARAM",
    "FFTParam",
    "ImageParam",
    "MacoParam",
    "PARAMS",
    "Parameterization",
    "PixelParam",
    "PyramidParam",
    "RawParam",
    "Subspace",
    "make_param",
    "natural_magnitude",
    "parse_options",
    "register_param",
]
