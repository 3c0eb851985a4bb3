"""Sequential hybrids: run strategy A for a share of the budget, then B from A's best point."""

from __future__ import annotations

import torch

from ..errors import FvoptError, suggest
from ..config.options import Option, coerce_options
from ..problem import Problem
from .base import (
    LOW_DIM_LIMIT,
    REGISTRY,
    BaseStrategy,
    Family,
    StepCost,
    is_known,
    make_strategy,
    register_family,
    search_space,
    strategy_options,
)
from .result import ReportsResult, best_seen

SWITCH = Option(float, low=0, high=1, low_open=True, high_open=True, help="share of the budget for the first part")


class Hybrid(BaseStrategy):
    """`hybrid:A>B`: A until `switch` of the budget is spent, then B continues from A's best.

    A searches the space the one search-space policy gives it (`search_space`: a zero-order A
    searches fft:k=8 when the problem is fft, pyramid:free=2 for pyramid, pixel:k=16 for pixel) and
    its result is lifted exactly (the same image) into the problem's parameterization for B. B gets
    the problem's own space, so `check` refuses a B that cannot search it before anything runs.

    `result` is the second part's (the hybrid returns B's point); A hands B its own default point.
    With `result=best`, the best point of the whole run (A's points lifted) is returned, also when
    the run ended before the switch.
    """

    prefers_low_dim = False

    def __init__(self, first: BaseStrategy, second: BaseStrategy, switch: float = 0.3) -> None:
        self.first, self.second, self.switch = first, second, switch
        self.uses_gradients = first.uses_gradients or second.uses_gradients
        self.switched_at: int | None = None
        self.result = second.result if isinstance(second, ReportsResult) else None

    def check(self, param, batch: int, budget=None) -> StepCost:
        low = search_space(self.first, param)
        cost = self.first.check(low, batch, budget)
        try:
            if search_space(self.second, param) is not param:
                raise FvoptError(
                    f"zero-order search is limited to {LOW_DIM_LIMIT} values; give the hybrid a "
                    "low-dimensional parameterization such as fft:k=8, or put the zero-order part first"
                )
            self.second.check(param, batch, budget)
        except FvoptError as err:
            raise FvoptError(
                f"{self.name}: its second part {self.second.name} would continue in {param.name} "
                f"({param.dim} values) and cannot: {err}"
            ) from None
        return cost

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        self.top = problem
        self.switched_at = None
        low = search_space(self.first, problem.param)
        if low is problem.param:
            self.low, z0_low = problem, z0
        else:
            self.low = problem.restricted(low)
            z0_low = self.low.init()
        self.first.start(self.low, z0_low)

    def first_ask(self, problem: Problem) -> None:
        self.first.first_ask(self.low)

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
        if self.switched_at is not None:
            return self.second.best
        point = self._lift(self.first.best)
        return best_seen(self.top, point) if self.result == "best" else point

    def status(self) -> dict:
        """Both parts' own status, what the first part searched, the step it switched at, and the
        hybrid's `result` (its second part's)."""
        return {
            "result": self.result,
            "switched_at_step": self.switched_at,
            "first_searched": self.low.param.name,
            "parts": [
                {"name": self.first.name, **self.first.status()},
                {"name": self.second.name, **(self.second.status() if self.switched_at is not None else {})},
            ],
        }


def _parts(spec: str) -> tuple[str, str]:
    parts = spec[len("hybrid:") :].split(">")
    if len(parts) != 2 or not all(parts):
        raise FvoptError(f"hybrid '{spec}' must name two strategies as hybrid:A>B, e.g. hybrid:cmaes>adam")
    for part in parts:
        if part.startswith("hybrid:"):
            raise FvoptError(f"a hybrid part cannot itself be a hybrid: '{part}' in '{spec}'")
        if not is_known(part):
            raise FvoptError(
                f"hybrid '{spec}' has an unknown part '{part}'.{suggest(part, REGISTRY)} "
                f"Known: {', '.join(sorted(REGISTRY))}, ng:<Name>, torch:<Name>"
            )
    return parts[0], parts[1]


def hybrid_options(spec: str) -> dict[str, Option]:
    """`switch`, and every option of either part (an option both take goes to both, except `result`,
    which is the second part's: the hybrid returns its point)."""
    first, second = _parts(spec)
    return {"switch": SWITCH, **strategy_options(first), **strategy_options(second)}


def make_hybrid(spec: str, **options) -> Hybrid:
    first, second = _parts(spec)
    values = coerce_options(options, hybrid_options(spec), f"optimizer '{spec}'")
    switch = values.pop("switch", 0.3)
    built = []
    if values.get("result") is not None and "result" not in strategy_options(second):
        raise FvoptError(f"optimizer '{spec}': result applies to its second part, and {second} does not take it")
    for index, part in enumerate((first, second)):
        allowed = strategy_options(part)
        given = {k: v for k, v in values.items() if k in allowed and not (k == "result" and index == 0)}
        built.append(make_strategy(part, **given))
    hybrid = Hybrid(built[0], built[1], switch)
    hybrid.name, hybrid.options = spec, {"switch": switch, **values}
    return hybrid


register_family(
    Family(
        "hybrid:",
        "hybrid:A>B",
        "hybrid:cmaes>adam",
        options=hybrid_options,
        build=lambda spec, values: make_hybrid(spec, **values),
        listing=lambda: [
            (
                "hybrid:A>B",
                "A for --switch of the budget (default 0.3), then B from A's best, e.g. "
                "hybrid:cmaes>adam; options: switch, and those of A and B",
                None,
            )
        ],
    )
)
