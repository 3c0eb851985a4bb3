"""Image parameterizations by name: `pixel`, `fft`, `pyramid`, `maco`, with options after a colon.

    fft                   Lucid's spectral image (1/f scaling, color decorrelation)
    fft:k=8,decay=0.75    only frequencies up to 8 free (918 values per image); decay exposed
    pyramid:free=2        Laplacian pyramid with only the 2 coarsest levels free
    pixel:k=16            a 16x16 grid of pixels, bilinearly upsampled
    maco:k=8              MaCo, only the low-frequency phases free
"""
from __future__ import annotations

from ..errors import FvoptError, suggest
from .base import COLOR_CORRELATION, Parameterization, Subspace
from .fourier import FFTParam, MacoParam, natural_magnitude
from .pixel import ImageParam, PixelParam
from .pyramid import PyramidParam

PARAM_OPTIONS = {
    "pixel": {"k": int, "decorrelate": bool, "sd": float, "init": str},
    "fft": {"k": int, "decay": float, "decorrelate": bool, "sd": float},
    "pyramid": {"levels": int, "free": int, "decorrelate": bool, "sd": float},
    "maco": {"k": int},
}


def parse_options(spec: str, allowed: dict[str, type], what: str) -> dict:
    """'k=8,decay=1.0' -> {'k': 8, 'decay': 1.0}, each checked against `allowed` names and types."""
    out: dict = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise FvoptError(f"option '{item}' of {what} must be KEY=VALUE")
        if key not in allowed:
            raise FvoptError(f"unknown option '{key}' for {what}.{suggest(key, allowed)} Allowed: {', '.join(allowed)}")
        kind = allowed[key]
        try:
            if kind is bool:
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                out[key] = value.lower() in ("1", "true", "yes")
            else:
                out[key] = kind(value)
        except ValueError:
            raise FvoptError(f"option {key}={value} of {what} must be {kind.__name__}") from None
    return out


def make_param(spec: str | Parameterization, size: int) -> Parameterization:
    """A parameterization from its name and options (see the module docstring)."""
    if isinstance(spec, Parameterization):
        return spec
    name, _, opts = spec.partition(":")
    if name not in PARAM_OPTIONS:
        raise FvoptError(f"unknown parameterization '{name}'.{suggest(name, PARAM_OPTIONS)} "
                         f"Known: {', '.join(PARAM_OPTIONS)} (options after a colon, e.g. fft:k=8)")
    o = parse_options(opts, PARAM_OPTIONS[name], f"parameterization {name}")
    try:
        if name == "pixel":
            k = o.pop("k", None)
            if k is not None and not 1 <= k <= size:
                raise ValueError(f"pixel grid k must be 1..{size}, not {k}")
            return PixelParam(size, grid=k, **o)
        if name == "fft":
            k = o.pop("k", None)
            full = FFTParam(size, **o)
            if k is not None and not 0 <= k <= size // 2:
                raise ValueError(f"fft cut-off k must be 0..{size // 2}, not {k}")
            return full if k is None else full.reduced(k)
        if name == "pyramid":
            free = o.pop("free", None)
            full = PyramidParam(size, **o)
            return full if free is None else full.reduced(free)
        k = o.pop("k", None)
        full = MacoParam(size)
        if k is not None and not 0 <= k <= size // 2:
            raise ValueError(f"maco cut-off k must be 0..{size // 2}, not {k}")
        return full if k is None else full.reduced(k)
    except ValueError as err:
        raise FvoptError(str(err)) from None


__all__ = [
    "COLOR_CORRELATION", "FFTParam", "ImageParam", "MacoParam", "Parameterization", "PixelParam", "PyramidParam",
    "Subspace", "make_param", "natural_magnitude", "parse_options",
]
