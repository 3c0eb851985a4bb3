"""Sequential hybrids: run strategy A for a share of the budget, then B from A's best point."""
from __future__ import annotations

import torch

from ..errors import FvoptError
from ..problem import Problem
from .base import Strategy, accepted_options, make_strategy

LOW_DIM_LIMIT = 4096


class Hybrid:
    """`hybrid:A>B`: A until `switch` of the budget is spent, then B continues from A's best.

    When A is zero-order and the problem's parameterization is high-dimensional, A searches its
    default low-dimensional form (fft -> fft:k=8, pyramid -> pyramid:free=2, pixel -> pixel:k=16)
    and its result is lifted exactly (the same image) into the full parameterization for B.
    """

    zero_order = False

    def __init__(self, first: Strategy, second: Strategy, switch: float = 0.3, names: tuple[str, str] = ("A", "B")):
        if not 0 < switch < 1:
            raise FvoptError(f"hybrid switch must be strictly between 0 and 1, not {switch}")
        self.first, self.second, self.switch, self.names = first, second, switch, names
        self.switched_at: int | None = None

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        self.top = problem
        if self.first.zero_order and problem.dim > LOW_DIM_LIMIT:
            self.low = problem.restricted(problem.param.reduced())
            z0_low = self.low.init()
        else:
            self.low, z0_low = problem, z0
        self.first.start(self.low, z0_low)

    def _lift(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.low is self.top else self.low.param.lift(z)

    def step(self, problem: Problem) -> None:
        if self.switched_at is None and problem.meter.progress() >= self.switch:
            self.switched_at = problem.meter.steps
            self.second.start(self.top, self._lift(self.first.best).detach())
        if self.switched_at is None:
            self.first.step(self.low)
        else:
            self.second.step(self.top)

    @property
    def best(self) -> torch.Tensor:
        return self.second.best if self.switched_at is not None else self._lift(self.first.best)


def make_hybrid(spec: str, switch: float = 0.3, **options) -> Hybrid:
    parts = spec[len("hybrid:"):].split(">")
    if len(parts) != 2 or not all(parts):
        raise FvoptError(f"hybrid '{spec}' must name two strategies as hybrid:A>B, e.g. hybrid:cmaes>adam")
    from .base import REGISTRY
    built = []
    used: set[str] = set()
    for part in parts:
        if part.startswith("hybrid:"):
            raise FvoptError(f"a hybrid part cannot itself be a hybrid: '{part}' in '{spec}'")
        if part.startswith("ng:"):
            from .evolution import NevergradStrategy
            allowed = accepted_options(NevergradStrategy) - {"name"}
        elif part in REGISTRY:
            allowed = accepted_options(REGISTRY[part].factory)
        else:
            from ..errors import suggest
            raise FvoptError(f"hybrid '{spec}' has an unknown part '{part}'.{suggest(part, REGISTRY)} "
                             f"Known: {', '.join(sorted(REGISTRY))}, ng:<Name>")
        mine = {k: v for k, v in options.items() if k in allowed}
        used |= set(mine)
        built.append(make_strategy(part, **mine))
    unknown = set(options) - used
    if unknown:
        raise FvoptError(f"no part of '{spec}' takes option(s) {', '.join(sorted(unknown))}")
    return Hybrid(built[0], built[1], switch, (parts[0], parts[1]))
