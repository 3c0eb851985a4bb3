"""Parameterizations by name, with typed options: `fft:k=8,decay=0.75`.

A new parameterization is one module that defines its class and registers a builder:

    @register_param("mine", "what it is", {"k": Option(int, low=1)})
    def _build(size: int, k: int | None = None) -> Parameterization: ...

The CLI help, spec validation, error suggestions and the shipped conformance checks
(`fvopt.testing.check_param`) read this registry; another package adds to it through a
`fvopt.params` entry point (see fvopt.registry).
"""

from __future__ import annotations

import inspect
from typing import Callable

from ..errors import FvoptError
from ..config.options import IMAGE_SIDE, Option, parse_options
from ..registry import Registry
from ..io.canvas import hw as _hw
from .base import Parameterization

# The parameterization a run uses when none is named (Lucid's spectral one, the best quality known at ImageNet
# scale); zero-order strategies search its low-dimensional form (the search-space policy).
DEFAULT_PARAM = "fft"

# Every parameterization by name; `fvopt.params` entry points of installed packages add to it.
PARAMS: Registry[Callable[..., Parameterization]] = Registry(
    "parameterization", group="fvopt.params", home="fvopt.params"
)


def register_param(name: str, summary: str, options: dict[str, Option], examples: tuple[str, ...] = ()) -> Callable:
    """Decorator over `build(size, **options) -> Parameterization`: make it available as `name[:options]`.

    `examples` are the specs the conformance checks run (`fvopt.testing.check_param`), its
    low-dimensional forms included; by default the bare name.
    """
    return PARAMS.register(name, summary, options, examples)


__all__ = ["DEFAULT_PARAM", "PARAMS", "make_param", "parse_options", "register_param"]


def make_param(spec: str | Parameterization, size, channels: int = 3, color=None) -> Parameterization:
    """A parameterization from its name and options, e.g. `fft`, `fft:k=8,decay=0.75`, `pyramid:free=2`.

    `size` is a side or (height, width); `channels` the image channels (1 grayscale, 3 RGB, any);
    `color` a `params.color.ColorBasis` replacing the default decorrelation (Lucid's for RGB, the
    identity otherwise). A builder that takes a `channels` keyword draws any canvas; one that does
    not is refused for anything but square RGB images, never run at a shape it does not draw.
    """
    from ..io.canvas import parse_size

    if size is None:
        IMAGE_SIDE.coerce("image size", size)  # one line naming the missing size
    if isinstance(spec, Parameterization):  # a made one keeps its own size; Problem checks its channels
        return spec
    if not isinstance(spec, str):
        raise FvoptError(f"param must be a name such as 'fft', not {type(spec).__name__} {spec!r}")
    size = parse_size(size, "image size")
    name, _, opts = spec.strip().partition(":")
    if name not in PARAMS:
        raise PARAMS.unknown(name, known=f"{', '.join(PARAMS)} (options after a colon, e.g. fft:k=8)")
    entry = PARAMS[name]
    first = opts.split(",", 1)[0]
    if "source" in entry.options and first.strip() and "=" not in first:  # generator:gen.py:make,dim=8
        opts = "source=" + opts
    options = parse_options(opts, entry.options, f"parameterization {name}")
    canvas = {}
    if channels != 3 or not isinstance(size, int) or color is not None:
        if "channels" not in inspect.signature(entry.obj).parameters:
            raise FvoptError(
                f"parameterization {name} draws only square 3-channel images, and "
                f"{channels}-channel {_hw(size)[0]}x{_hw(size)[1]} images were asked for"
            )
        canvas = {"channels": channels, "color": color}
    try:
        return entry.obj(size, **options, **canvas)
    except ValueError as err:
        raise FvoptError(str(err)) from None
