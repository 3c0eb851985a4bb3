"""Guided evolution strategies (Maheswaranathan et al., ICML 2019)."""

from __future__ import annotations

import math

import torch

from ..config.options import Option
from ..problem import Problem
from .base import BaseStrategy, StepCost, register
from .evolution import POPSIZE, SIGMA
from .result import ReportsResult, result_option

GUIDED_ES_OPTIONS = {
    "popsize": POPSIZE,
    "sigma": SIGMA,
    "lr": Option(float, low=0, low_open=True, help="Adam learning rate on the ES estimate"),
    "alpha": Option(float, low=0, high=1, help="share of isotropic noise"),
    "k": Option(int, low=1, help="recent gradients spanning the guiding subspace"),
    "beta": Option(float, low=0, low_open=True, help="scale of the estimate"),
    "result": result_option(("last", "best"), "last"),
}


@register(
    "guided-es",
    "antithetic ES whose search mixes isotropic noise with the span of recent gradients "
    "(one gradient + 2P forwards per step)",
    GUIDED_ES_OPTIONS,
)
class GuidedES(ReportsResult, BaseStrategy):
    """Antithetic ES sampling eps ~ N(0, sigma^2 (alpha/n I + (1-alpha)/k U U^T)).

    U is an orthonormal basis of the last k gradients (the "guiding subspace"); the estimate is
    g = beta / (2 sigma^2 P) * sum_i eps_i (f(x + eps_i) - f(x - eps_i)). Each iteration spends
    one gradient and 2P forward passes, all under one transform draw. The estimate drives Adam
    (the paper used plain SGD; Adam makes one learning rate work across parameterizations).
    """

    # It spends one backward pass per step (its guiding gradient), and its population search is
    # meant for a low-dimensional space, like the other evolution strategies.
    uses_gradients = True
    prefers_low_dim = True

    def __init__(
        self,
        popsize: int = 8,
        sigma: float | None = None,
        lr: float = 0.05,
        alpha: float = 0.5,
        k: int = 4,
        beta: float = 2.0,
        result: str | None = None,
    ) -> None:
        self.choose_result(result)
        self.pairs = max(1, popsize // 2)
        self.sigma_option, self.lr, self.alpha, self.k, self.beta = sigma, lr, alpha, int(k), beta

    def check(self, param, batch: int, budget=None) -> StepCost:
        return StepCost(batch + 2 * self.pairs * batch, batch)

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        from ..params.base import calibrate_sigma
        from .evolution import PIXEL_RMS

        self.sigma = self.sigma_option or calibrate_sigma(problem.param, z0, PIXEL_RMS, problem.seed)
        self.problem = problem
        self.z = z0.detach().clone().to(problem.device).requires_grad_(True)
        self.opt = torch.optim.Adam([self.z], lr=self.lr, maximize=True)
        self.history: list[torch.Tensor] = []
        self.rng = torch.Generator(device=problem.device).manual_seed(problem.seed + 104729)

    def step(self, problem: Problem) -> None:
        B, n = self.z.shape
        with problem.fixed_draw():
            _, grad = problem.value_and_grad(self.z)
            self.history = (self.history + [grad.detach()])[-self.k :]
            U, _ = torch.linalg.qr(torch.stack(self.history, dim=2))  # (B, n, k')
            kk = U.shape[2]
            dev = self.z.device
            iso = torch.randn((self.pairs, B, n), generator=self.rng, device=dev) * math.sqrt(self.alpha / n)
            sub = torch.einsum("bnk,pbk->pbn", U, torch.randn((self.pairs, B, kk), generator=self.rng, device=dev))
            eps = self.sigma * (iso + math.sqrt((1 - self.alpha) / kk) * sub)
            z = self.z.detach()[None]
            values = problem.evaluate(torch.cat([z + eps, z - eps]))
        diff = (values[: self.pairs] - values[self.pairs :]).to(eps.device)  # (P, B)
        estimate = self.beta / (2 * self.sigma**2 * self.pairs) * (eps * diff[..., None]).sum(0)
        self.z.grad = estimate
        self.opt.step()

    def last_point(self) -> torch.Tensor:
        return self.z.detach()

    def status(self) -> dict:
        return {"popsize": 2 * self.pairs, "sigma": self.sigma, **self.result_status()}
