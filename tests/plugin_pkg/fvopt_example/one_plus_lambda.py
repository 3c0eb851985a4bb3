import torch

from fvopt.config.options import Option
from fvopt.strategies.base import BaseStrategy, StepCost, register


@register(
    "one-plus-lambda",
    "(1+lambda)-ES: the best of lambda Gaussian mutations replaces the parent",
    {"popsize": Option(int, low=1, help="mutations per step"), "sigma": Option(float, low=0, low_open=True)},
)
class OnePlusLambda(BaseStrategy):
    uses_gradients = False  # forward passes only: the checks verify that no backward pass is spent
    prefers_low_dim = True  # searches fft:k=8 when asked for fft

    def __init__(self, popsize: int = 8, sigma: float = 0.05) -> None:
        self.popsize, self.sigma = popsize, sigma

    def check(self, param, batch, budget=None) -> StepCost:
        return StepCost(forwards=self.popsize * batch)  # a smaller budget is refused before the run

    def start(self, problem, z0) -> None:  # all search state is made here: a reused problem leaks nothing
        self.parent = z0.clone()
        self.value = torch.full((problem.batch,), -torch.inf, device=problem.device)
        self.rng = torch.Generator(device=problem.device).manual_seed(problem.seed)

    def step(self, problem) -> None:
        noise = torch.randn((self.popsize, *self.parent.shape), generator=self.rng, device=problem.device)
        children = self.parent + self.sigma * noise
        values = problem.evaluate(children)  # (popsize, batch): one batched, counted, budgeted pass
        top, index = values.max(0)
        better = top > self.value
        slots = torch.arange(self.parent.shape[0], device=problem.device)
        self.parent[better] = children[index, slots][better]
        self.value = torch.maximum(self.value, top)

    @property
    def best(self) -> torch.Tensor:
        return self.parent
