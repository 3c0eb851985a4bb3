"""First-order strategies: SGD, momentum, Adam, and normalized gradient ascent (the DeepDream rule)."""
from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import FvoptError
from ..gradients import normalize_std
from ..options import Option
from ..problem import Problem
from .base import BaseStrategy, StepCost, register

DEFAULT_LR = {"sgd": 1.0, "momentum": 0.5, "adam": 0.05, "normalized": 0.05}


class GradientAscent(BaseStrategy):
    """One `value_and_grad` per step, then a torch.optim update that maximizes the objective.

    `normalized` steps along g / std(g) per image (DeepDream's rule), which makes the step size
    independent of the gradient's scale. `blur_every` blurs pixel images every N steps (a classic
    regularizer of the pixel parameterization).
    """

    def __init__(self, kind: str = "adam", lr: float | None = None, momentum: float = 0.9, nesterov: bool = False,
                 blur_every: int = 0, blur_sigma: float = 0.5) -> None:
        if kind not in DEFAULT_LR:
            raise FvoptError(f"unknown first-order kind '{kind}'")
        self.kind = kind
        self.lr = DEFAULT_LR[kind] if lr is None else lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.blur_every = blur_every
        self.blur_sigma = blur_sigma
        self.steps = 0

    def check(self, param, batch: int, budget=None) -> StepCost:
        if self.blur_every and not hasattr(param, "grid"):
            raise FvoptError(f"blur_every applies to the pixel parameterization, not {param.name}")
        if self.nesterov and self.kind != "momentum":
            raise FvoptError(f"nesterov applies to the momentum optimizer, not {self.kind}")
        return StepCost(batch, batch)

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        self.steps = 0
        self.z = z0.detach().clone().to(problem.device).requires_grad_(True)
        if self.kind == "adam":
            self.opt = torch.optim.Adam([self.z], lr=self.lr, maximize=True)
        else:
            mom = self.momentum if self.kind == "momentum" else 0.0
            self.opt = torch.optim.SGD([self.z], lr=self.lr, momentum=mom, nesterov=self.nesterov and mom > 0,
                                       maximize=True)

    def step(self, problem: Problem) -> None:
        _, grad = problem.value_and_grad(self.z)
        if self.kind == "normalized":
            grad = normalize_std(grad, eps=1e-12)
        self.z.grad = grad
        self.opt.step()
        self.steps += 1
        if self.blur_every and self.steps % self.blur_every == 0:
            with torch.no_grad():
                self.z.copy_(blur_pixels(self.z, problem.param.grid, self.blur_sigma))

    @property
    def best(self) -> torch.Tensor:
        return self.z.detach()

    def status(self) -> dict:
        return {"lr": self.lr}


def blur_pixels(z: torch.Tensor, grid: int, sigma: float) -> torch.Tensor:
    """Gaussian blur of pixel-parameterization vectors (batch, 3*grid*grid), 3x3 kernel."""
    x = torch.arange(-1, 2, dtype=z.dtype, device=z.device)
    k1 = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = (k1[:, None] * k1[None, :])
    k = (k / k.sum()).expand(3, 1, 3, 3)
    img = z.view(-1, 3, grid, grid)
    return F.conv2d(F.pad(img, [1] * 4, mode="replicate"), k, groups=3).reshape(z.shape)


FIRST_ORDER_OPTIONS = {
    "lr": Option(float, low=0, low_open=True, help="learning rate"),
    "blur_every": Option(int, low=0, help="blur pixel images every N steps (0: never)"),
    "blur_sigma": Option(float, low=0, low_open=True, help="blur kernel sigma in pixels"),
}
MOMENTUM_OPTIONS = {**FIRST_ORDER_OPTIONS, "momentum": Option(float, low=0, high=1, high_open=True),
                    "nesterov": Option(bool)}


def _factory(kind: str) -> Callable[..., GradientAscent]:
    """A factory for one first-order kind: the kind is fixed here, never an option a user can set."""
    return functools.partial(GradientAscent, kind)


register("sgd", "plain gradient ascent (torch.optim.SGD)", FIRST_ORDER_OPTIONS)(_factory("sgd"))
register("momentum", "SGD with momentum 0.9 (nesterov=true for Nesterov)", MOMENTUM_OPTIONS)(_factory("momentum"))
register("adam", "Adam, lr 0.05 (Lucent's default)", FIRST_ORDER_OPTIONS)(_factory("adam"))
register("normalized", "steps along g / std(g): DeepDream's normalized gradient ascent",
         FIRST_ORDER_OPTIONS)(_factory("normalized"))
