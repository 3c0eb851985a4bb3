"""Parameterizations by name, with typed options: `fft:k=8,decay=0.75`.

A new parameterization is one module that defines its class and registers a builder:

    @register_param("mine", "what it is", {"k": Option(int, low=1)})
    def _build(size: int, k: int | None = None) -> Parameterization: ...

The CLI help, spec validation, error suggestions and the conformance suite
(tests/test_conformance_params.py) read this registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import FvoptError, suggest
from ..options import IMAGE_SIDE, Option, coerce_options
from .base import Parameterization


@dataclass(frozen=True)
class ParamEntry:
    build: Callable[..., Parameterization]  # build(size, **options)
    summary: str
    options: dict[str, Option] = field(default_factory=dict)
    examples: tuple[str, ...] = ()  # specs the conformance suite runs, low-dimensional forms included


PARAMS: dict[str, ParamEntry] = {}


def register_param(name: str, summary: str, options: dict[str, Option], examples: tuple[str, ...] = ()) -> Callable:
    def deco(build):
        PARAMS[name] = ParamEntry(build, summary, dict(options), examples or (name,))
        return build
    return deco


def parse_options(spec: str, allowed: dict[str, Option], what: str) -> dict:
    """'k=8,decay=1.0' -> {'k': 8, 'decay': 1.0}, each checked against `allowed` names, types and ranges."""
    raw: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise FvoptError(f"option '{item}' of {what} must be KEY=VALUE")
        if key in raw:
            raise FvoptError(f"option '{key}' of {what} is given twice")
        raw[key] = value.strip()
    return coerce_options(raw, allowed, what)


def make_param(spec: str | Parameterization, size: int) -> Parameterization:
    """A parameterization from its name and options, e.g. `fft`, `fft:k=8,decay=0.75`, `pyramid:free=2`."""
    if isinstance(spec, Parameterization):
        return spec
    if not isinstance(spec, str):
        raise FvoptError(f"param must be a name such as 'fft', not {type(spec).__name__} {spec!r}")
    size = IMAGE_SIDE.coerce("image size", size)
    name, _, opts = spec.strip().partition(":")
    if name not in PARAMS:
        raise FvoptError(f"unknown parameterization '{name}'.{suggest(name, PARAMS)} "
                         f"Known: {', '.join(PARAMS)} (options after a colon, e.g. fft:k=8)")
    entry = PARAMS[name]
    first = opts.split(",", 1)[0]
    if "source" in entry.options and first.strip() and "=" not in first:  # generator:gen.py:make,dim=8
        opts = "source=" + opts
    options = parse_options(opts, entry.options, f"parameterization {name}")
    try:
        return entry.build(size, **options)
    except ValueError as err:
        raise FvoptError(str(err)) from None
