"""The strategy contract and the registry that names strategies for the command line and for specs.

A strategy owns only its search state. It starts from z0 (batch, dim), takes one iteration through
the problem, and reports its current best z. Everything it spends goes through the problem.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import torch

from ..errors import FvoptError, suggest
from ..problem import Problem


@runtime_checkable
class Strategy(Protocol):
    # True when the strategy searches without gradients: it then defaults to a low-dimensional
    # parameterization, since zero-order search lives in about a thousand dimensions or fewer.
    zero_order: bool

    def start(self, problem: Problem, z0: torch.Tensor) -> None: ...

    def step(self, problem: Problem) -> None: ...

    @property
    def best(self) -> torch.Tensor: ...


@dataclass(frozen=True)
class Entry:
    factory: Callable[..., Strategy]
    summary: str


REGISTRY: dict[str, Entry] = {}


def register(name: str, summary: str) -> Callable:
    """Class or function decorator: make a strategy available by `name`."""
    def deco(factory):
        REGISTRY[name] = Entry(factory, summary)
        return factory
    return deco


def known_strategies() -> list[str]:
    return sorted(REGISTRY) + ["ng:<Name>", "hybrid:A>B"]


def accepted_options(factory: Callable) -> set[str]:
    params = inspect.signature(factory).parameters.values()
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}


def make_strategy(spec: str, **options) -> Strategy:
    """A strategy by name: a registered one, `ng:<NevergradName>`, or `hybrid:A>B`.

    Options that are None are ignored; any other option the strategy does not take is an error.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if spec.startswith("hybrid:"):
        from .hybrid import make_hybrid
        return make_hybrid(spec, **options)
    if spec.startswith("ng:"):
        from .evolution import NevergradStrategy
        return _build(NevergradStrategy, spec, options, name=spec[3:])
    if spec not in REGISTRY:
        raise FvoptError(f"unknown optimizer '{spec}'.{suggest(spec, REGISTRY)} Known: {', '.join(sorted(REGISTRY))}; "
                         "any nevergrad optimizer as ng:<Name> (e.g. ng:NGOpt, ng:TwoPointsDE); hybrids as hybrid:A>B "
                         "(e.g. hybrid:cmaes>adam)")
    return _build(REGISTRY[spec].factory, spec, options)


def _build(factory: Callable, spec: str, options: dict, **fixed) -> Strategy:
    allowed = accepted_options(factory) - set(fixed)
    unknown = set(options) - allowed
    if unknown:
        raise FvoptError(f"optimizer '{spec}' does not take option(s) {', '.join(sorted(unknown))}; "
                         f"it takes: {', '.join(sorted(allowed)) or 'none'}")
    return factory(**fixed, **options)


def check_positive(name: str, value, minimum: float = 0, strict: bool = True) -> None:
    if value is None:
        return
    if (strict and value <= minimum) or (not strict and value < minimum):
        raise FvoptError(f"{name} must be {'>' if strict else '>='} {minimum:g}, not {value}")
