"""L-BFGS: torch.optim.LBFGS with a strong-Wolfe line search, under one transform draw per step."""

from __future__ import annotations

import torch

from ..config.options import Option
from ..problem import Problem
from .base import BaseStrategy, StepCost, register
from .result import ReportsResult, result_option

LBFGS_OPTIONS = {
    "lr": Option(float, low=0, low_open=True, help="step length (torch default 1)"),
    "max_iter": Option(int, low=1, help="L-BFGS iterations per outer step"),
    "history_size": Option(int, low=1, help="curvature pairs kept"),
    "result": result_option(("best", "last"), "best"),
}


@register("lbfgs", "torch.optim.LBFGS, strong-Wolfe line search, one transform draw per outer step", LBFGS_OPTIONS)
class LBFGS(ReportsResult, BaseStrategy):
    """Each outer step runs up to `max_iter` L-BFGS iterations with the transforms frozen.

    Why frozen: the curvature history and the line search assume one deterministic objective;
    a new random draw per closure call would break both. So a step samples one draw and every
    closure call reuses it (common random numbers). The result is the problem's best-so-far point:
    torch's L-BFGS may stop at a trial point when the budget runs out inside a line search.
    `result=last` returns the iterate torch holds (that trial point, when the budget ran out there).
    """

    results = ("best", "last")
    default_result = "best"

    def __init__(self, lr: float = 1.0, max_iter: int = 20, history_size: int = 100, result: str | None = None) -> None:
        self.lr, self.max_iter, self.history_size = lr, int(max_iter), int(history_size)
        self.choose_result(result)

    def check(self, param, batch: int, budget=None) -> StepCost:
        return StepCost(batch, batch)  # the first closure call; a line search may stop at any later one

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        self.problem = problem
        self.z = z0.detach().clone().to(problem.device).requires_grad_(True)
        self.opt = torch.optim.LBFGS(
            [self.z],
            lr=self.lr,
            max_iter=self.max_iter,
            max_eval=self.max_iter * 5 // 4,
            history_size=self.history_size,
            line_search_fn="strong_wolfe",
        )

    def step(self, problem: Problem) -> None:
        def closure() -> torch.Tensor:
            values, grad = problem.value_and_grad(self.z)
            self.z.grad = -grad
            return -values.sum()

        with problem.fixed_draw():
            self.opt.step(closure)

    def last_point(self) -> torch.Tensor:
        return self.z.detach().clone()

    def status(self) -> dict:
        return self.result_status()
